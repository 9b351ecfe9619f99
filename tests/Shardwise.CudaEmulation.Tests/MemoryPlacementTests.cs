using System;
using System.IO;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cuda;
using Shardwise.Examples;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;

namespace Shardwise.CudaEmulation.Tests;

/// <summary>
/// The plan's host/device split for a GPU job (MemoryReport.Host and Device, what <c>plan</c> prints as "device X,
/// host Y"): a TinyGpt engine on the emulated device in bf16 holds exactly what MemoryPlan.Predict says for a GPU
/// job, category by category and in host memory, for every optimizer placement — the step in the backend (ZeRO 0–3),
/// offloaded to the CPU (ZeRO 1–3), swapped to NVMe, the parameters offloaded to the CPU or swapped to NVMe at ZeRO-3,
/// and the host steps of Lamb and the 1-bit optimizers; Lion and Adagrad step in the backend as Adam does (lion.cu, adagrad.cu).
/// </summary>
[TestClass]
public sealed class MemoryPlacementTests
{
    [TestMethod]
    [DataRow(0, "none", "none", "Adam")]
    [DataRow(0, "none", "none", "Lion")]
    [DataRow(0, "none", "none", "Lamb")]
    [DataRow(0, "none", "none", "Adagrad")]
    [DataRow(0, "none", "none", "OneBitAdam")]
    [DataRow(0, "none", "none", "OneBitLamb")]
    [DataRow(0, "none", "none", "ZeroOneAdam")]
    [DataRow(1, "none", "none", "Adam")]
    [DataRow(1, "cpu", "none", "Adam")]
    [DataRow(1, "nvme", "none", "Adam")]
    [DataRow(2, "none", "none", "Adam")]
    [DataRow(2, "none", "none", "Lion")]
    [DataRow(2, "none", "none", "Adagrad")]
    [DataRow(2, "cpu", "none", "Adam")]
    [DataRow(2, "nvme", "none", "Adam")]
    [DataRow(3, "none", "none", "Adam")]
    [DataRow(3, "none", "none", "Lion")]
    [DataRow(3, "none", "cpu", "Adam")]
    [DataRow(3, "cpu", "cpu", "Adam")]
    [DataRow(3, "nvme", "none", "Adam")]
    [DataRow(3, "cpu", "nvme", "Adam")]
    [DataRow(3, "nvme", "nvme", "Adam")]
    public void AGpuEngineHoldsWhatThePlanPlacesOnTheDeviceAndTheHost(int stage, string offload, string parameters, string optimizer)
    {
        GpuSupport.RequireGpu();
        string swap = Directory.CreateTempSubdirectory("shardwise-placement-").FullName;
        try
        {
            var config = DeepSpeedConfig.Parse($$"""
                { "train_micro_batch_size_per_gpu": 2, "bf16": { "enabled": true },
                  "optimizer": { "type": "{{optimizer}}", "params": { "lr": 1e-3 } },
                  "zero_optimization": { "stage": {{stage}}, "stage3_param_persistence_threshold": 300, "sub_group_size": 5000,
                                         "offload_optimizer": { "device": "{{offload}}", "nvme_path": "{{swap}}" },
                                         "offload_param": { "device": "{{parameters}}", "nvme_path": "{{swap}}" } } }
                """).Config;
            var program = TinyGpt.Compile(TrainingEngine.CreateBackend(config, TinyGpt.ParameterLayout, TinyGpt.GradientPool, TinyGpt.ParameterPool, BackendKind.Cuda), 2);
            TinyGpt.ParameterLayout.Initialize(program.Parameters, seed: 1);
            var engine = TrainingEngine.Initialize(program, config);
            MemoryReport held = engine.Memory;
            var planned = MemoryPlan.Predict(TinyGpt.ParameterLayout, TinyGpt.ActivationPlan, TinyGpt.GradientPool, TinyGpt.ParameterPool,
                config, ranks: 1, rank: 0, workingBytes: 2, exchangesInDeviceMemory: true);
            Console.WriteLine($"ZeRO-{stage} {optimizer} offload_optimizer {offload}{(parameters != "none" ? " + offload_param " + parameters : "")}: {held.DescribePlacement()} ({held.Describe()}); step {engine.DescribeOptimizerStep()}");

            Assert.AreEqual(planned, held, $"planned {planned.Describe()} / {planned.DescribePlacement()}, held {held.Describe()} / {held.DescribePlacement()}");
            Assert.AreEqual(planned.Host, held.Host, "host bytes (record equality covers it; said for the message)");
            long state = held.MasterWeights + held.OptimizerStates;
            bool hostStep = offload != "none" || parameters != "none" || optimizer is "Lamb" or "OneBitAdam" or "OneBitLamb" or "ZeroOneAdam";
            Assert.AreEqual(!hostStep, engine.FusedOptimizer, "the step runs in the backend exactly when nothing is offloaded and the optimizer is Adam, Lion or Adagrad");
            if (!hostStep) Assert.AreEqual(0, held.Host, "nothing of a device step's job lives in host arrays");
            if (!hostStep && offload == "none")
                Assert.AreEqual((optimizer == "Lion" ? 1L : 2L) * sizeof(float) * engine.OwnedElements, held.OptimizerStates,
                    "moments in the backend: Lion's momentum alone, two for Adam and Adagrad");
            else Assert.IsTrue(held.Host >= state && held.Host > 0, "the host step's masters and moments are host memory");
            if (parameters == "nvme")
                Assert.AreEqual(2 * engine.OwnedElements + (offload == "nvme" ? 12 * engine.OwnedElements : 0), held.Nvme, "the rounded pieces (bf16, 2 bytes) beside any optimizer swap");
            if (offload == "nvme")
            {
                Assert.AreEqual(0, state, "the swapped state is on NVMe");
                if (parameters != "nvme") Assert.AreEqual(12 * engine.OwnedElements, held.Nvme);
                long swapBuffers = engine.OptimizerSwap!.BufferBytes;
                if (stage == 1) Assert.AreEqual(swapBuffers + 4 * engine.OwnedElements, held.Host, "ZeRO-1 on one rank: the swap's buffers and the host copy of the gradients");
                else Assert.IsTrue(held.Host >= swapBuffers + 8 * engine.OwnedElements, "the swap's buffers beside the pieces");
            }
            if (stage >= 2 && hostStep)
                Assert.IsTrue(held.Host >= 2L * 4 * engine.OwnedElements, "ZeRO-2/3 through the host: the reduced and the rounded pieces");
        }
        finally
        {
            Directory.Delete(swap, recursive: true);
        }
    }
}
