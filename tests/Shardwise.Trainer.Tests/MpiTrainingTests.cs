using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Checkpoints;
using Shardwise.Examples;

namespace Shardwise.Trainer.Tests;

/// <summary>
/// The TinyGpt trainer as real processes under <c>mpirun</c>: data parallelism and ZeRO-1/2/3 on 2 ranks with
/// micro-batch 1 give the same weights as one process with micro-batch 2 (the same global batch), relative difference
/// &lt; 1e-5 after 12 steps; and a run saved on 4 ranks resumes on 2.
/// </summary>
[TestClass]
public sealed class MpiTrainingTests
{

    [TestMethod]
    [DataRow(0)]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(3)]
    public void ZeroUnderMpirunEqualsOneProcess(int stage)
    {
        string mpirun = FindOnPath("mpirun") ?? throw new AssertInconclusiveException("mpirun is not on PATH; scripts/setup.sh installs Open MPI");
        var root = TrainerRun.TempDirectory();
        string sharded = Path.Combine(root, "sharded"), single = Path.Combine(root, "single");
        const string steps = "12";

        var (code, output) = RunMpi(mpirun, 2, "train", "--config", TrainerRun.WriteZeroConfig(root, 1, stage), "--steps", steps, "--output", sharded, "--eval-interval", "0");
        Assert.AreEqual(0, code, output);
        StringAssert.Contains(output, "ranks 2");
        TrainerRun.Succeed("train", "--config", TrainerRun.WriteZeroConfig(root, 2, 0), "--steps", steps, "--output", single, "--eval-interval", "0");

        var a = TrainerRun.CheckpointWeights(Path.Combine(sharded, "step-000012"));
        var b = TrainerRun.CheckpointWeights(Path.Combine(single, "step-000012"));
        double relative = TrainerRun.RelativeDifference(a, b);
        Console.WriteLine($"ZeRO-{stage}, mpirun -np 2 vs one process: relative weight difference {relative:E2}");
        Assert.IsTrue(relative < 1e-5, $"relative difference {relative:E2}");
    }

    /// <summary>
    /// ZeRO++ under mpirun, 4 processes (the hpZ groups split from MPI's world): hpZ alone trains as one process does
    /// with the same global batch; with qwZ and qgZ on top the quantized run stays close to it, and the log names all three.
    /// </summary>
    [TestMethod]
    public void ZeroPlusPlusUnderMpirun()
    {
        string mpirun = FindOnPath("mpirun") ?? throw new AssertInconclusiveException("mpirun is not on PATH; scripts/setup.sh installs Open MPI");
        var root = TrainerRun.TempDirectory();
        string Config(string name, string keys)
        {
            string path = Path.Combine(root, name + ".json");
            File.WriteAllText(path, $$"""
                { "train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 2, "steps_per_print": 100,
                  "optimizer": { "type": "AdamW", "params": { "lr": 1e-3, "weight_decay": 0.1 } },
                  "zero_optimization": { "stage": 3, "stage3_param_persistence_threshold": 0, {{keys}} } }
                """);
            return path;
        }
        const string steps = "12";
        string hpz = Path.Combine(root, "hpz"), all = Path.Combine(root, "all"), single = Path.Combine(root, "single");
        var (code, output) = RunMpi(mpirun, 4, "train", "--config", Config("hpz", "\"zero_hpz_partition_size\": 2"), "--steps", steps, "--output", hpz, "--eval-interval", "0");
        Assert.AreEqual(0, code, output);
        StringAssert.Contains(output, "from the hpZ group's copy");
        (code, output) = RunMpi(mpirun, 4, "train", "--config",
            Config("all", "\"zero_hpz_partition_size\": 2, \"zero_quantized_weights\": true, \"zero_quantized_gradients\": true"),
            "--steps", steps, "--output", all, "--eval-interval", "0");
        Assert.AreEqual(0, code, output);
        StringAssert.Contains(output, "ZeRO++: parameters gathered as int8 blocks (qwZ), gradients reduced as int4 blocks through all-to-alls within the nodes, then between them (qgZ), backward's gathers within groups of 2 ranks from their copy (hpZ)");
        TrainerRun.Succeed("train", "--config", TrainerRun.WriteZeroConfig(root, 4, 0), "--steps", steps, "--output", single, "--eval-interval", "0");

        var reference = TrainerRun.CheckpointWeights(Path.Combine(single, "step-000012"));
        double exact = TrainerRun.RelativeDifference(TrainerRun.CheckpointWeights(Path.Combine(hpz, "step-000012")), reference);
        double quantized = TrainerRun.RelativeDifference(TrainerRun.CheckpointWeights(Path.Combine(all, "step-000012")), reference);
        Console.WriteLine($"ZeRO-3 + hpZ 2, mpirun -np 4 vs one process: relative weight difference {exact:E2}; with qwZ and qgZ too: {quantized:E2}");
        Assert.IsTrue(exact < 1e-5, $"hpZ: relative difference {exact:E2}");
        Assert.IsTrue(quantized is > 1e-5 and < 0.1, $"qwZ + qgZ + hpZ: relative difference {quantized:E2}");
    }

    /// <summary>
    /// DeepSpeed's gradient wire keys under mpirun (the 16-bit segments' all-to-all over MPI point-to-point calls):
    /// ZeRO-2 on 2 processes with a bf16 wire, predivided by 2, stays close to one process with the same global batch
    /// but not equal to it, and the log says how the gradients travel.
    /// </summary>
    [TestMethod]
    public void GradientWireUnderMpirun()
    {
        string mpirun = FindOnPath("mpirun") ?? throw new AssertInconclusiveException("mpirun is not on PATH; scripts/setup.sh installs Open MPI");
        var root = TrainerRun.TempDirectory();
        string config = Path.Combine(root, "wire.json"), wire = Path.Combine(root, "wire"), single = Path.Combine(root, "single");
        File.WriteAllText(config, """
            { "train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 2, "steps_per_print": 100,
              "communication_data_type": "bf16", "gradient_predivide_factor": 2,
              "optimizer": { "type": "AdamW", "params": { "lr": 1e-3, "weight_decay": 0.1 } },
              "zero_optimization": { "stage": 2 } }
            """);
        var (code, output) = RunMpi(mpirun, 2, "train", "--config", config, "--steps", "12", "--output", wire, "--eval-interval", "0");
        Assert.AreEqual(0, code, output);
        StringAssert.Contains(output, "gradients reduced over 2 ranks through host memory (bf16 on the wire, predivided by 2, then × 2/ranks)");
        TrainerRun.Succeed("train", "--config", TrainerRun.WriteZeroConfig(root, 2, 0), "--steps", "12", "--output", single, "--eval-interval", "0");
        double apart = TrainerRun.RelativeDifference(TrainerRun.CheckpointWeights(Path.Combine(wire, "step-000012")),
            TrainerRun.CheckpointWeights(Path.Combine(single, "step-000012")));
        Console.WriteLine($"ZeRO-2, bf16 wire predivided by 2, mpirun -np 2 vs one process: relative weight difference {apart:E2}");
        Assert.IsTrue(apart is > 1e-6 and < 1e-2, $"relative difference {apart:E2}");
    }

    [TestMethod]
    public void SavedOnFourProcessesResumesOnTwo()
    {
        string mpirun = FindOnPath("mpirun") ?? throw new AssertInconclusiveException("mpirun is not on PATH; scripts/setup.sh installs Open MPI");
        var root = TrainerRun.TempDirectory();
        string four = Path.Combine(root, "four"), two = Path.Combine(root, "two"), one = Path.Combine(root, "one");
        var (code, output) = RunMpi(mpirun, 4, "train", "--config", TrainerRun.WriteZeroConfig(root, 1, 3), "--steps", "8", "--output", four, "--eval-interval", "0");
        Assert.AreEqual(0, code, output);

        // Both continuations see 2 rows per micro-batch: 2 processes × 1, or 1 process × 2.
        foreach (var target in new[] { two, one }) TrainerRun.CopyDirectory(four, target);
        (code, output) = RunMpi(mpirun, 2, "train", "--config", TrainerRun.WriteZeroConfig(root, 1, 2), "--steps", "16", "--resume", two, "--eval-interval", "0");
        Assert.AreEqual(0, code, output);
        StringAssert.Contains(output, "resumed from");
        TrainerRun.Succeed("train", "--config", TrainerRun.WriteZeroConfig(root, 2, 0), "--steps", "16", "--resume", one, "--eval-interval", "0");

        double relative = TrainerRun.RelativeDifference(
            TrainerRun.CheckpointWeights(Path.Combine(two, "step-000016")),
            TrainerRun.CheckpointWeights(Path.Combine(one, "step-000016")));
        Console.WriteLine($"saved on 4 processes (ZeRO-3), resumed on 2 (ZeRO-2) vs 1 process: relative weight difference {relative:E2}");
        Assert.IsTrue(relative < 1e-5, $"relative difference {relative:E2}");
    }


    /// <summary>
    /// ZeRO-Infinity under mpirun: two processes at ZeRO-3 with the optimizer state and the parameter pieces swapped to
    /// files in one shared directory end where one process without any sharding ends, and leave no file behind.
    /// </summary>
    [TestMethod]
    public void ZeroInfinityUnderMpirunEqualsOneProcess()
    {
        string mpirun = FindOnPath("mpirun") ?? throw new AssertInconclusiveException("mpirun is not on PATH; scripts/setup.sh installs Open MPI");
        var root = TrainerRun.TempDirectory();
        string swap = Directory.CreateDirectory(Path.Combine(root, "nvme")).FullName;
        string sharded = Path.Combine(root, "sharded"), single = Path.Combine(root, "single");
        string config = Path.Combine(root, "ds_infinity.json");
        File.WriteAllText(config, $$"""
            { "train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 2, "steps_per_print": 100,
              "optimizer": { "type": "AdamW", "params": { "lr": 1e-3, "weight_decay": 0.1 } },
              "zero_optimization": { "stage": 3, "stage3_param_persistence_threshold": 0, "sub_group_size": 20000,
                                     "offload_optimizer": { "device": "nvme", "nvme_path": "{{swap}}", "pipeline_read": true, "pipeline_write": true },
                                     "offload_param": { "device": "nvme", "nvme_path": "{{swap}}" } } }
            """);

        var (code, output) = RunMpi(mpirun, 2, "train", "--config", config, "--steps", "12", "--output", sharded, "--eval-interval", "0");
        Assert.AreEqual(0, code, output);
        StringAssert.Contains(output, "masters and moments swapped to NVMe under " + swap);
        StringAssert.Contains(output, "parameter pieces swapped to NVMe under " + swap);
        TrainerRun.Succeed("train", "--config", TrainerRun.WriteZeroConfig(root, 2, 0), "--steps", "12", "--output", single, "--eval-interval", "0");

        double relative = TrainerRun.RelativeDifference(
            TrainerRun.CheckpointWeights(Path.Combine(sharded, "step-000012")),
            TrainerRun.CheckpointWeights(Path.Combine(single, "step-000012")));
        Console.WriteLine($"ZeRO-3 with both NVMe swaps, mpirun -np 2 vs one process: relative weight difference {relative:E2}");
        Assert.IsTrue(relative < 1e-5, $"relative difference {relative:E2}");
        Assert.AreEqual(0, Directory.GetFileSystemEntries(swap).Length, "no swap file is left behind");
    }

    /// <summary>
    /// OneBitAdam, OneBitLamb and ZeroOneAdam under mpirun: the all-to-all runs over MPI's blocking point-to-point calls (a
    /// deadlock would time out); the job passes its freeze step, trains on with compressed communication, and its loss falls.
    /// </summary>
    [TestMethod]
    [DataRow("OneBitAdam", "\"lr\": 2e-3, \"freeze_step\": 5")]
    [DataRow("OneBitLamb", "\"lr\": 2e-2, \"coeff_beta\": 0.5, \"freeze_step\": 5")]
    [DataRow("ZeroOneAdam", "\"lr\": 2e-3, \"var_freeze_step\": 12, \"var_update_scaler\": 4, \"local_step_scaler\": 4, \"local_step_clipper\": 4")]
    public void OneBitOptimizersUnderMpirunCompressAfterTheirFreezeStep(string optimizer, string settings)
    {
        string mpirun = FindOnPath("mpirun") ?? throw new AssertInconclusiveException("mpirun is not on PATH; scripts/setup.sh installs Open MPI");
        var root = TrainerRun.TempDirectory();
        string config = Path.Combine(root, "ds_onebit.json");
        File.WriteAllText(config, $$"""
            { "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 1, "steps_per_print": 5,
              "optimizer": { "type": "{{optimizer}}", "params": { {{settings}}, "weight_decay": 0.01, "comm_backend_name": "mpi" } } }
            """);
        var (code, output) = RunMpi(mpirun, 3, "train", "--config", config, "--steps", "30", "--output", Path.Combine(root, "run"), "--eval-interval", "0");
        Assert.AreEqual(0, code, output);
        StringAssert.Contains(output, "1-bit compression");
        var losses = System.Text.RegularExpressions.Regex.Matches(output, @"loss (\d+\.\d+)").Select(m => double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Console.WriteLine($"losses printed: {string.Join(", ", losses)}");
        Assert.IsTrue(losses.Count >= 3 && losses[^1] < losses[0] - 0.2, $"the loss must fall: {string.Join(", ", losses)}");
    }

    private static (int Code, string Output) RunMpi(string mpirun, int ranks, params string[] trainerArgs)
    {
        var start = new ProcessStartInfo(mpirun) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { "--allow-run-as-root", "--oversubscribe", "-np", ranks.ToString(System.Globalization.CultureInfo.InvariantCulture),
                                    "-x", "OPENBLAS_NUM_THREADS=1", "dotnet", Path.Combine(AppContext.BaseDirectory, "TinyGpt.dll") })
            start.ArgumentList.Add(arg);
        foreach (var arg in trainerArgs) start.ArgumentList.Add(arg);
        start.Environment["TERM"] = "dumb";
        start.Environment.Remove("OMPI_COMM_WORLD_SIZE");
        var output = new StringBuilder();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("mpirun did not finish within 5 minutes:\n" + output);
        }
        process.WaitForExit();
        lock (output) return (process.ExitCode, output.ToString());
    }


    private static string? FindOnPath(string name) => (Environment.GetEnvironmentVariable("PATH") ?? "")
        .Split(Path.PathSeparator).Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);
}
