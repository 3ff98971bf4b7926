// The precompiled header's own translation unit (CMake needs a source to build phantom_pch from).
