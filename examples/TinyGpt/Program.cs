using System;
using Shardwise.Cpu;
using Shardwise.Examples;

// For now the main job runs one generated forward/backward of TinyGpt on the CPU and prints the loss and the plan.
const int batch = 12;
var model = new TinyGpt();
model.InitializeParameters(seed: 1337);

var program = new TinyGpt.Compiled<float>(new CpuOps<float>(), batch);
model.CopyParametersTo<float>(program.Parameters);

var random = new Random(0);
var ids = new int[batch * TinyGpt.Context];
var targets = new int[ids.Length];
for (int i = 0; i < ids.Length; i++)
{
    ids[i] = random.Next(TinyGpt.Vocabulary);
    targets[i] = random.Next(TinyGpt.Vocabulary);
}

float loss = program.Forward(ids, targets);
program.ZeroGradients();
program.Backward(1f);
Console.WriteLine(TinyGpt.PlanReport);
Console.WriteLine($"loss {loss:F4} (uniform guess: ln {TinyGpt.Vocabulary} = {Math.Log(TinyGpt.Vocabulary):F4})");
