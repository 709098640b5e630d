package main

import (
	"sort"
	"strings"
)

// The libraries name an option they cannot use by its field (train.Options.LR, package
// opterr); bear names its flag. Each command lists the names its libraries use and the flags
// they stand for; runMain rewrites its error with them.

var ortOptions = map[string]string{
	"ortrun.Init(path)":             "--ort-lib",
	"ortrun.ModelOptions.CacheDir":  "--cache-dir",
	"ortrun.ModelOptions.Weights":   "--weights",
	"ortrun.SessionOptions.Device":  "--device",
	"ortrun.SessionOptions.Threads": "--threads",
}

var trainOptions = map[string]string{
	"train.Options.Model": "--model", "train.Options.Data": "--data", "train.Options.Dataset": "--dataset",
	"train.Options.Split": "--split", "train.Options.Tokenizer": "--tokenizer", "train.Options.Out": "--out",
	"train.Options.Samples": "--samples", "train.Options.Epochs": "--epochs", "train.Options.LR": "--lr",
	"train.Options.Warmup": "--warmup", "train.Options.LoRADropout": "--lora-dropout", "train.Options.LoRA.Targets": "--lora-targets",
	"train.Options.LoRA": "--lora-targets", "train.Options.Full": "--train full", "train.Options.Seed": "--seed",
	"train.Options.Resume": "--resume", "train.Options.EvalUsers": "--eval-users", "train.Options.CheckpointEvery": "--checkpoint-every",
	"train.Options.MaxSteps": "--max-steps", "train.Options.Valid": "--valid", "train.Options.ValidFile": "--valid-file",
	"train.Options.EarlyStop": "--early-stop", "train.Options.RunFile": "--config", "train.Options.Batch.NormGroup": "--norm-group", "train.Options.Batch": "--batch",
	"train.Options.Loss.Kind": "--loss", "train.Options.Loss.Tau": "--tau", "train.Options.Loss.Xi": "--xi",
	"train.Options.Loss.Lambda": "--lambda", "train.Options.Loss.K": "--k", "train.Options.Batch.Batch": "--batch",
	"train.Options.Batch.Micro": "--micro-batch", "train.Options.Batch.Bucket": "--bucket", "train.Options.LoRA.Rank": "--lora-r",
	"train.Options.LoRA.Alpha": "--lora-alpha", "train.Options.Policy": "--policy",
	"train.Options.Runtime.Device": "--device", "train.Options.Runtime.Threads": "--threads",
	"trainset.Options.Batch": "--batch", "trainset.Options.NormGroup": "--norm-group", "trainset.Options.Micro": "--micro-batch",
	"trainset.Options.Bucket": "--bucket",
	"lossgrad.Config.Kind":    "--loss", "lossgrad.Config.Tau": "--tau", "lossgrad.Config.Xi": "--xi",
	"lossgrad.Config.Lambda": "--lambda", "lossgrad.Config.K": "--k",
	"llama.LoRASpec.Rank": "--lora-r", "llama.LoRASpec.Targets": "--lora-targets",
}

var evalOptions = map[string]string{
	"evaluate.Options.Model": "--model", "evaluate.Options.Adapter": "--adapter", "evaluate.Options.Tokenizer": "--tokenizer",
	"evaluate.Options.Data": "--data", "evaluate.Options.Dataset": "--dataset", "evaluate.Options.Split": "--split",
	"evaluate.Options.Limit": "--limit", "evaluate.Options.Beams": "--beams", "evaluate.Options.Mode": "--constrain",
	"evaluate.Options.MaxNewTokens": "--max-new-tokens", "evaluate.Options.Batch": "--batch", "evaluate.Options.KVCache": "--no-kv-cache",
	"evaluate.Options.MaxRows": "--max-rows", "evaluate.Options.Pruning": "--pruning",
	"evaluate.Options.ExactLengthPenalty": "--exact-length-penalty", "evaluate.Options.MaxFrontier": "--max-frontier",
	"evaluate.Options.ExactMemory": "--exact-memory", "evaluate.Options.OfficialMatch": "--official-match",
	"evaluate.Options.Out": "--out", "evaluate.Options.Fresh": "--fresh", "evaluate.Options.Shard": "--shard",
}

// joinOptions merges tables of option names.
func joinOptions(tables ...map[string]string) map[string]string {
	all := map[string]string{}
	for _, t := range tables {
		for k, v := range t {
			all[k] = v
		}
	}
	return all
}

// flagNames rewrites the option names of msg as flags, the longest name first (so that
// train.Options.LoRA.Targets is not read as train.Options.LoRA followed by ".Targets").
func flagNames(msg string, options map[string]string) string {
	if len(options) == 0 {
		return msg
	}
	names := make([]string, 0, len(options))
	for k := range options {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		return len(names[i]) > len(names[j]) || len(names[i]) == len(names[j]) && names[i] < names[j]
	})
	pairs := make([]string, 0, 2*len(names))
	for _, n := range names {
		pairs = append(pairs, n, options[n])
	}
	return strings.NewReplacer(pairs...).Replace(msg)
}
