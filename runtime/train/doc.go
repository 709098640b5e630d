// Package train is the `bear train` job: it fine-tunes a Llama checkpoint with LML, MSL or BEAR
// as the official train_lml.py / train_msl.py / train_bear.py do, and writes PEFT adapters,
// checkpoints and a training log. It ties together the pieces that own each concern: trainset
// (examples, epoch order, norm groups, micro-batches), ortrun.Trainer (the forward and backward
// graphs on ONNX Runtime), lossgrad (the losses and their gradients), optim (clipping, AdamW,
// the schedule) and trainlog (train.jsonl).
//
// # One optimizer step
//
// A step holds --batch sequences in norm groups of --norm-group (the official run's 8 devices
// of 16 sequences). For each micro-batch of a group: the forward graph gives the logits the loss
// needs (MSL and BEAR: only the union of the micro-batch's allowed tokens, LogitsSubset; LML: the
// whole vocabulary at the label positions), lossgrad computes the loss and its gradient without
// the group's normaliser (Config.Unnormalised), and the backward graph maps that cotangent to
// the trainable values' gradients. Backward is linear in the cotangent, so the micro-batches'
// gradients add up to the group's un-normalised gradient, which is divided once by the group's
// normaliser (its positions for LML and MSL; its BEAR weights over positions with more than one
// allowed token, plus 1e-8) and by the number of groups (DDP's mean). Then clip_grad_norm_ at
// 1.0, the learning rate of the linear warm-up schedule for this step, and AdamW. The logged
// loss is the mean of the groups' losses.
//
// Shapes are bucketed (sequence length by trainset, the logit rows to 32, the subset's columns to
// 64) so that ONNX Runtime and the trainer's buffers see a few shapes and are reused.
//
// # Randomness and resume
//
// The LoRA initialisation (PEFT's: A Kaiming-uniform with a = √5, B zero) is a function of
// --seed; the epoch order is a function of (seed, epoch) and the dropout masks of (seed, step,
// micro-batch). The step is therefore the whole random state: checkpoint.safetensors holds the
// trainable values, the AdamW moments, the step and the run's identity (content hashes of the
// model, split and tokenizer, and every flag that decides the numbers), and a resumed run
// replays the remaining steps exactly: with the same thread count ONNX Runtime on the CPU is
// deterministic here, and a run killed with SIGKILL and resumed ends with the adapter of an
// uninterrupted run, bit for bit (TestKillAndResume).
//
// # Outputs
//
// Every file is written beside its final name and renamed into place (folders are built in a
// temporary sibling and swapped in): epoch-N/ and final/ (a PEFT adapter, or with --train full a
// whole checkpoint), checkpoint.safetensors (every CheckpointEvery steps, at each epoch's end, at
// the run's end, and when the context is cancelled), train.jsonl (a run record when the run starts or
// resumes, with the training rows and the item ids missing from the catalogue that were dropped
// from them, which the start-up message also reports; then one record per step, appended and
// fsynced; a resumed run first drops the records after its checkpoint), and with EvalUsers the
// evaluation of each epoch's model on the first test users (eval-epoch-N/, `bear eval`'s
// defaults: 10 beams, max_new_tokens 128, checked against the catalogue before training). Files
// are written with mode 0644 (internal/atomicfs).
package train
