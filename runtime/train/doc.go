// Package train is the `bear train` job: it fine-tunes a Llama checkpoint with LML, MSL or BEAR
// as the official train_lml.py, train_msl.py and train_bear.py do (LoRA as PEFT, or every
// weight with Options.Full). It ties together the packages that own each part: trainset (the
// examples, epoch order, norm groups and micro-batches), ortrun.Trainer (the forward and
// backward graphs on ONNX Runtime), lossgrad (the losses and their gradients), optim
// (clipping, AdamW, the schedule) and trainlog (train.jsonl).
//
// # Run
//
// Run validates the options (an error names the field, train.Options.Field), reads the split,
// builds the graphs and performs the optimizer steps (a step's norm groups are each normalised
// on their own, then averaged, as DDP averages the official run's devices). It locks
// Options.Out and writes there, every file beside its final name and renamed into place:
//
//   - epoch-N/ after each epoch and final/ at the end: a PEFT adapter (with Options.Full a
//     whole checkpoint), with the training record bear eval reads its constraint mode from;
//   - checkpoint.safetensors every Options.CheckpointEvery steps, at each epoch's end, at the
//     end and on interrupt: the trainable values, the AdamW moments, the step and the run's
//     identity (the content hashes of its inputs and every setting that decides the numbers);
//   - train.jsonl (LogFile; package trainlog): a run record when the run starts or resumes,
//     then one record per step and one per evaluation;
//   - events.out.tfevents.bear (TensorBoardFile; package tfevents): train.jsonl's values for
//     TensorBoard, as float32;
//   - with Options.Valid (the latest rows of the split, held out from training into
//     valid.csv) or Options.ValidFile, the evaluation of each epoch's model on them
//     (valid-epoch-N/) and best/, the model of the epoch with the highest validation NDCG@10
//     (ties: the earlier), with its selection record; Options.EarlyStop ends the run after that
//     many epochs without improvement (every rank takes rank 0's decision). The test split
//     never selects;
//   - with Options.EvalUsers, the evaluation of each epoch's model on the first test users
//     (eval-epoch-N/, with bear eval's defaults), for watching only.
//
// # Resume and interrupts
//
// The LoRA initialisation is a function of Options.Seed, the epoch order of (seed, epoch) and
// the dropout masks of (seed, step, micro-batch), so the step is the whole random state.
// Options.Resume continues a run from its checkpoint after checking that its identity is this
// run's, and replays the remaining steps exactly: with the same thread count on the CPU, a run
// killed and resumed ends with the adapter of an uninterrupted run, bit for bit. Cancelling
// Run's context stops after the step in progress, saves a checkpoint and returns an error
// wrapping ErrInterrupted.
//
// # Data parallelism
//
// With Options.Comm (several processes under mpirun, package comm) every rank holds the whole
// run and computes the norm groups g of each step with g mod N = its rank; one all-reduce of
// the gradients per step gives every rank the one-process gradient, so N processes train as one
// does. Rank 0 alone writes the outputs, and its state starts the others.
package train
