// The model source of the triple builder (InternVL MPO's way): k sampled answers per question from a phantom
// model, on the trainer's own generation code (trainers/eval/answer.h: the chat template, the image placement and
// tiling the model was trained with, left-padded batches with the KV cache). A question's k copies go through one
// batch, each row drawing its own sample.
#pragma once

#include "data/chat_template.h"
#include "data/images/image.h"
#include "phantom/model/generate.h"
#include "phantom/model/model.h"
#include "trainers/triples/builder.h"

namespace phantom::triples {

// `gc` must sample (do_sample); `batch_rows` answers are generated together. Each batch draws from the generator
// seeded gc.seed + its index, so a run is reproducible.
ModelSampler model_sampler(PhantomModelImpl& model, const data::Tokenizer& tok, const data::SampleEncoder& enc,
                           const data::TileOptions& tiles, GenerationConfig gc, int64_t batch_rows);

}  // namespace phantom::triples
