// The subcommands of build/phantom, one file each.
#pragma once

namespace phantom::cli {

int cmd_train(int argc, char** argv);
int cmd_config(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_generate(int argc, char** argv);
int cmd_data(int argc, char** argv);
int cmd_convert(int argc, char** argv);
int cmd_info(int argc, char** argv);

// For subcommands whose implementation has not landed yet: a clear error, exit code 3.
int not_yet_available(const char* command, const char* issue);

}  // namespace phantom::cli
