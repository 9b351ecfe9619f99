using Shardwise.Examples;
using Shardwise.Training.Cli;

// The whole trainer: train, eval, sample, plan and bench verbs for the generated TinyGpt program.
return TrainerCli.Run<TinyGpt>(args);
