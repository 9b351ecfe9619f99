using System;
using System.Globalization;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Pipeline.Tests;

namespace Shardwise.CudaEmulation.Tests;

/// <summary>
/// Several ranks on the CUDA backend, each an mpirun process with its own emulated device, against the same job on the
/// CPU backend: data parallel at ZeRO stages 0–3 (TwoBlockGpt, 2 ranks) and the pipelined trainer's stages
/// (PipelineGpt p = 2, also p2 × d2 at ZeRO-2 and ZeRO-3; HybridGpt p2 × t2). Collectives go through host memory
/// (SHARDWISE_COMMUNICATOR=mpi, the host-staged path), reading and writing CudaOps' arenas through their host views.
/// Loss and gradient norm of every step and the final fp32 weights agree to 1e-5 (relative). The same jobs over the
/// fake NCCL (SHARDWISE_COMMUNICATOR=nccl: StagedNcclCommunicator, each rank on its own emulated device, the ranks
/// meeting through files) agree too; at ZeRO 0 they average the gradient arenas in device memory and run the fused
/// optimizer step on every rank, at ZeRO 1 they reduce-scatter (average) the gradient arenas, step their own partition on the
/// device and all-gather the parameter arenas, at ZeRO 2 they stage every slot's pieces in device buckets during backward
/// and keep their partition's gradients, masters and moments on the device.
/// </summary>
[TestClass]
public sealed class MultiRankTrainingTests
{
    private const int Steps = 6;
    private const double Tolerance = 1e-5;

    /// <summary>
    /// ZeRO-3 keeps slots under DeepSpeed's default persistence threshold (10⁵ elements) whole, which is all of
    /// TwoBlockGpt's 1,624 parameters: with 50 only the biases and norms stay whole and the weights are gathered when
    /// the program needs them.
    /// </summary>
    private const string StreamedSlots = "\"stage3_param_persistence_threshold\": 50";

    [TestMethod]
    [DataRow(0)]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(3)]
    public void DataParallelZeroOnTwoEmulatedDevicesEqualsTheCpuJob(int zeroStage)
    {
        using var job = new EmulatedJob("TwoBlockGpt", zeroStage);

        var cpu = job.Train("cpu", ranks: 2, Steps, device: "cpu");
        var cuda = job.Train("cuda", ranks: 2, Steps, device: "cuda");

        StringAssert.Contains(cuda.Output, $"× ranks 2 = 8 sequences", cuda.Output);
        StringAssert.Contains(cuda.Output, $"ZeRO stage {zeroStage}", cuda.Output);
        EmulatedJob.AssertSameTraining(cpu.Directory, cuda.Directory, Steps, Tolerance);
        double weights = SafeTensorsFile.RelativeDifference(job.FinalWeights(cpu.Directory), job.FinalWeights(cuda.Directory));
        Assert.IsTrue(weights < Tolerance, $"final weights differ from the CPU job's by {weights:E2} (relative)");
    }

    /// <summary>
    /// bf16 storage on the devices (activations, parameters and gradients in 16-bit arenas, fp32 compute) against the
    /// CPU job, which keeps fp32 activations and rounds only parameters and gradients: the runs differ by the 16-bit
    /// activations, so they agree to one bf16 rounding u = 2⁻⁸ (relative) in the loss of every step and to 4u in the
    /// gradient norm (the bound CudaModelHalfTests holds for TinyGpt's gradients on one device), not to 1e-5.
    /// Measured: losses about 1e-5 apart, gradient norms up to 0.7% (1.8u). A wrong exchange is far outside it (a
    /// 16-bit HybridGpt stage reading its fp32 loss statistics as 16-bit was 14% off at step 1). The final weights
    /// are printed, not bounded by u: Adam normalises every element, so a near-zero gradient element whose sign the
    /// 16-bit activations flip moves by 2·lr instead of 0 (measured: 3.5% relative after 6 steps at lr 1e-2, largest
    /// element difference 0.02 = 2·lr).
    /// </summary>
    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(0, "nccl")] // the 16-bit gradient arenas averaged in device memory (one more bf16 rounding), fused step
    [DataRow(1, "nccl")] // reduce-scattered in device memory, each rank's partition stepped there, parameters all-gathered
    [DataRow(2, "nccl")] // slot pieces bucketed and reduce-scattered during backward on the device, partitions stepped there
    [DataRow(3, "nccl")] // and parameters gathered into the residency pool on the device when the program needs them
    public void DataParallelBf16StorageOnTwoEmulatedDevicesFollowsTheCpuJob(int zeroStage, string communicator = "mpi")
    {
        const double oneBf16Rounding = 1.0 / 256;
        using var job = new EmulatedJob("TwoBlockGpt", zeroStage, "bf16", zeroSettings: zeroStage == 3 ? StreamedSlots : "");

        var cpu = job.Train("cpu", ranks: 2, Steps, device: "cpu");
        var cuda = job.Train("cuda", ranks: 2, Steps, device: "cuda", communicator);
        if (communicator == "nccl")
            StringAssert.Contains(cuda.Output, DeviceStep(zeroStage, ranks: 2), cuda.Output);

        EmulatedJob.AssertSameTraining(cpu.Directory, cuda.Directory, Steps, oneBf16Rounding, 4 * oneBf16Rounding);
        double weights = SafeTensorsFile.RelativeDifference(job.FinalWeights(cpu.Directory), job.FinalWeights(cuda.Directory));
        Console.WriteLine($"ZeRO-{zeroStage} bf16 over {communicator}: final weights {weights:E2} apart (relative)");
        Assert.IsTrue(double.IsFinite(weights), "the device run's checkpoint holds finite fp32 weights");
    }

    /// <summary>
    /// ZeRO++ on GPU jobs takes the host path (the quantization and hpZ's group gathers run on the host over the
    /// communicator, NCCL's host-staged collectives here, whose Split gives the hpZ groups): bf16 on two emulated devices
    /// follows the CPU job with the same keys as the plain bf16 jobs above do.
    /// </summary>
    [TestMethod]
    public void ZeroPlusPlusOnTwoEmulatedDevicesFollowsTheCpuJob()
    {
        const double oneBf16Rounding = 1.0 / 256;
        using var job = new EmulatedJob("TwoBlockGpt", 3, "bf16",
            zeroSettings: StreamedSlots + ", \"zero_quantized_weights\": true, \"zero_quantized_gradients\": true, \"zero_hpz_partition_size\": 2");
        var cpu = job.Train("cpu", ranks: 2, Steps, device: "cpu");
        var cuda = job.Train("cuda", ranks: 2, Steps, device: "cuda", "nccl");
        StringAssert.Contains(cuda.Output, "ZeRO++: parameters gathered as int8 blocks (qwZ), gradients reduced as int4 blocks through all-to-alls within the nodes, then between them (qgZ), backward's gathers within groups of 2 ranks from their copy (hpZ)");
        StringAssert.Contains(cuda.Output, "from the hpZ group's copy");
        EmulatedJob.AssertSameTraining(cpu.Directory, cuda.Directory, Steps, oneBf16Rounding, 4 * oneBf16Rounding);
    }

    /// <summary>
    /// communication_data_type and gradient_predivide_factor on GPU jobs: NCCL averages the gradient arena in its storage
    /// type, or in fp32 through a widened copy (cast.cu), dividing by the rank count before the sum (what a predivide
    /// factor is for), so a bf16 job asking for a bf16 or an fp32 wire, or a predivide factor, stays on the device at
    /// every stage, while an fp16 wire over bf16 gradients is reduced through host memory as the config asks. Either
    /// way bf16 on two emulated devices follows the CPU job with the same keys.
    /// </summary>
    [TestMethod]
    [DataRow(0, "\"communication_data_type\": \"fp32\"", true)]
    [DataRow(1, "\"communication_data_type\": \"fp32\"", true)]
    [DataRow(2, "\"communication_data_type\": \"fp32\"", true)]
    [DataRow(0, "\"communication_data_type\": \"fp32\"", true, "\"overlap_comm\": true, \"reduce_bucket_size\": 500")] // buckets of 500
    [DataRow(3, "\"communication_data_type\": \"fp32\"", true, "\"stage3_param_persistence_threshold\": 50, \"reduce_bucket_size\": 300")]
    [DataRow(0, "\"gradient_predivide_factor\": 2", true)]
    [DataRow(2, "\"communication_data_type\": \"bf16\"", true)]
    [DataRow(1, "\"communication_data_type\": \"fp16\"", false)]
    public void TheGradientWireDecidesWhereAGpuJobReduces(int zeroStage, string keys, bool onDevice, string zeroSettings = "")
    {
        const double oneBf16Rounding = 1.0 / 256;
        using var job = new EmulatedJob("TwoBlockGpt", zeroStage, "bf16", zeroSettings: zeroSettings, topLevel: keys);
        var cpu = job.Train("cpu", ranks: 2, Steps, device: "cpu");
        var cuda = job.Train("cuda", ranks: 2, Steps, device: "cuda", "nccl");
        StringAssert.Contains(cuda.Output, onDevice ? DeviceStep(zeroStage, ranks: 2) : "gradients reduced over 2 ranks through host memory", cuda.Output);
        // An fp32 wire over bf16 gradients widens each exchange on the device (cast.cu into an fp32 scratch), whose size
        // `plan` predicts: the largest exchange of the stage, in fp32.
        bool widens = onDevice && keys.Contains("fp32");
        Assert.AreEqual(widens, cuda.Output.Contains("gradient exchanges widened to fp32 on the device"), cuda.Output);
        string plan = job.Plan(ranks: 2);
        var planned = System.Text.RegularExpressions.Regex.Match(plan, @"plus the fp32 gradient wire's device scratch \(communication_data_type over BFloat16 gradients\): ([\d,]+) bytes");
        Assert.AreEqual(widens, planned.Success, plan);
        if (widens) StringAssert.Contains(cuda.Output, $"(communication_data_type): {planned.Groups[1].Value} bytes of scratch", plan);
        EmulatedJob.AssertSameTraining(cpu.Directory, cuda.Directory, Steps, oneBf16Rounding, 4 * oneBf16Rounding);
    }

    /// <summary>
    /// Lion and Adagrad step on the device too (lion.cu, adagrad.cu through IFusedOptimizerOps): fp32 over the emulated
    /// NCCL at ZeRO 1–3 (the partition stepped where it lives) follows the CPU job: losses and gradient norms to 1e-5,
    /// Adagrad's final weights to 1e-5, Lion's element by element except the attention key bias, whose gradient is
    /// rounding noise (measured: 12 of its 16 elements a few lr apart, every other element bitwise the CPU job's).
    /// </summary>
    [TestMethod]
    [DataRow(1, "Lion")]
    [DataRow(2, "Lion")]
    [DataRow(3, "Lion")]
    [DataRow(2, "Adagrad")]
    public void LionAndAdagradStepOnTwoEmulatedDevicesLikeTheCpuJob(int zeroStage, string optimizer)
    {
        string settings = optimizer == "Lion" ? "\"lr\": 1e-2, \"betas\": [0.9, 0.99]" : "\"lr\": 1e-2";
        using var job = new EmulatedJob("TwoBlockGpt", zeroStage, zeroSettings: zeroStage == 3 ? StreamedSlots : "",
            optimizer: $"{{ \"type\": \"{optimizer}\", \"params\": {{ {settings}, \"weight_decay\": 0.1 }} }}");

        var cpu = job.Train("cpu", ranks: 2, Steps, device: "cpu");
        var cuda = job.Train("cuda", ranks: 2, Steps, device: "cuda", "nccl");
        StringAssert.Contains(cuda.Output, DeviceStep(zeroStage, ranks: 2), cuda.Output);
        EmulatedJob.AssertSameTraining(cpu.Directory, cuda.Directory, Steps, Tolerance);
        double weights = SafeTensorsFile.RelativeDifference(job.FinalWeights(cpu.Directory), job.FinalWeights(cuda.Directory));
        Console.WriteLine($"ZeRO-{zeroStage} {optimizer} over NCCL: final weights {weights:E2} apart (relative)");
        if (optimizer == "Adagrad")
        {
            Assert.IsTrue(weights < Tolerance, $"final weights differ from the CPU job's by {weights:E2} (relative)");
            return;
        }
        // Lion steps by lr·sign(c) whatever |c| is. The key bias's gradient is zero in exact arithmetic (softmax does not
        // change when a constant is added to a row of scores), so it holds only rounding noise whose sign differs with
        // the summation order of CPU and GPU: those elements may be up to 2·lr per step apart. Every other element agrees.
        var cpuTensors = SafeTensorsFile.Read(job.FinalWeights(cpu.Directory));
        const double lionStep = 1e-2;
        foreach (var (name, values) in SafeTensorsFile.Read(job.FinalWeights(cuda.Directory)))
        {
            float[] reference = cpuTensors[name];
            int third = values.Length / 3;
            bool KeyBias(int i) => name.EndsWith("qkv.bias", StringComparison.Ordinal) && i >= third && i < 2 * third;
            for (int i = 0; i < values.Length; i++)
            {
                double apart = Math.Abs(values[i] - reference[i]);
                double bound = KeyBias(i) ? 2 * lionStep * Steps + 1e-6 : Tolerance * Math.Max(1, Math.Abs(reference[i]));
                Assert.IsTrue(apart <= bound, $"{name}[{i}]: {values[i]} on the devices, {reference[i]} on the CPU ({apart:E2} apart, bound {bound:E2})");
            }
        }
    }

    /// <summary>
    /// A GPU job under mpirun with SHARDWISE_COMMUNICATOR unset and one device per rank takes NCCL, as DeepSpeed does,
    /// and so averages its ZeRO-0 gradients in device memory.
    /// </summary>
    [TestMethod]
    public void AGpuJobWithoutACommunicatorSettingTakesNccl()
    {
        using var job = new EmulatedJob("TwoBlockGpt", 0);

        var run = job.Train("default", ranks: 2, Steps / 2, device: "cuda", communicator: "");

        StringAssert.Contains(run.Output, "nranks 2 cudaDev 1 - Init COMPLETE", run.Output);
        StringAssert.Contains(run.Output, "gradients averaged over 2 ranks in device memory (NCCL)", run.Output);
    }

    /// <summary>
    /// fp16 with dynamic loss scaling at ZeRO 1 and 2 over the fake NCCL: each rank checks only its partition for
    /// overflow and the ranks exchange the flag. The job must skip the same steps with the same scales as the CPU job,
    /// and its updates follow it to a few fp16 roundings (the devices' activations are 16-bit, the CPU's fp32).
    /// <list type="bullet">
    /// <item>ZeRO 1: the scale starts at 2¹⁶ and doubles after every good step (loss_scale_window 1) until the scaled
    /// gradients overflow fp16 at 2¹⁹ — in some partitions only, so a rank that went by its own flag would step where
    /// the others skip (tried: without the exchange the job leaves the CPU job's gradient norms).</item>
    /// <item>ZeRO 2: the scale starts at 2¹⁸, which the first step overflows everywhere. (At 2¹⁹ the device's
    /// partition gradients, accumulated in fp16 as DeepSpeed's stage 2 does, overflow where the CPU job's fp32
    /// accumulator does not, so the ZeRO-1 schedule would not compare like with like.)</item>
    /// </list>
    /// The average in device memory matters too: when the ranks' fp16 gradients were summed instead, the sum overflowed
    /// where the CPU job's average did not, and the job skipped one step more.
    /// </summary>
    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    public void DataParallelFp16OverTheEmulatedNcclSkipsTheStepsTheCpuJobSkips(int zeroStage)
    {
        const double fewFp16Roundings = 4.0 / 2048;
        using var job = new EmulatedJob("TwoBlockGpt", zeroStage, "fp16", zeroStage == 1
            ? "\"initial_scale_power\": 16, \"hysteresis\": 1, \"loss_scale_window\": 1"
            : "\"initial_scale_power\": 18, \"hysteresis\": 1");

        var cpu = job.Train("cpu", ranks: 2, Steps, device: "cpu");
        var nccl = job.Train("nccl", ranks: 2, Steps, device: "cuda", communicator: "nccl");

        StringAssert.Contains(nccl.Output, DeviceStep(zeroStage, ranks: 2), nccl.Output);
        string[] skipped = EmulatedJob.Column(cpu.Directory, "skipped_steps"), scales = EmulatedJob.Column(cpu.Directory, "loss_scale");
        Console.WriteLine($"CPU job: loss scales {string.Join(" ", scales)}; skipped steps {string.Join(" ", skipped)}");
        if (zeroStage == 1) Assert.AreEqual("0", skipped[0], "the first step must not overflow: a later one overflows some partitions");
        Assert.IsTrue(int.Parse(skipped[^1], CultureInfo.InvariantCulture) > 0, "steps must overflow fp16 and be skipped");
        Console.WriteLine($"NCCL job: loss scales {string.Join(" ", EmulatedJob.Column(nccl.Directory, "loss_scale"))}; skipped steps {string.Join(" ", EmulatedJob.Column(nccl.Directory, "skipped_steps"))}");
        CollectionAssert.AreEqual(skipped, EmulatedJob.Column(nccl.Directory, "skipped_steps"), "the same steps skipped");
        CollectionAssert.AreEqual(scales, EmulatedJob.Column(nccl.Directory, "loss_scale"), "the same loss scales");
        EmulatedJob.AssertSameTraining(cpu.Directory, nccl.Directory, Steps, fewFp16Roundings, 4 * fewFp16Roundings);
    }

    /// <summary>
    /// ZeRO 0 and 1 over the fake NCCL, stopped halfway and resumed: every rank loads the checkpoint into its device-side
    /// masters and moments (the fused step; at ZeRO 1 its partition of them), and the resumed run ends where the
    /// uninterrupted CPU job does.
    /// </summary>
    [TestMethod]
    [DataRow(0)]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(3)]
    public void DataParallelOverTheEmulatedNcclResumesIntoTheDeviceOptimizerState(int zeroStage)
    {
        using var job = new EmulatedJob("TwoBlockGpt", zeroStage, zeroSettings: zeroStage == 3 ? StreamedSlots : "");

        var cpu = job.Train("cpu", ranks: 2, Steps, device: "cpu");
        job.Train("nccl", ranks: 2, Steps / 2, device: "cuda", communicator: "nccl");
        var resumed = job.Train("nccl", ranks: 2, Steps, device: "cuda", communicator: "nccl", resume: true);

        StringAssert.Contains(resumed.Output, $"resumed from", resumed.Output);
        StringAssert.Contains(resumed.Output, DeviceStep(zeroStage, ranks: 2), resumed.Output);
        double weights = SafeTensorsFile.RelativeDifference(job.FinalWeights(cpu.Directory), job.FinalWeights(resumed.Directory));
        Assert.IsTrue(weights < Tolerance, $"final weights differ from the uninterrupted CPU job's by {weights:E2} (relative)");
    }

    [TestMethod]
    [DataRow("PipelineGpt", 2, 0)]
    [DataRow("PipelineGpt", 4, 2)] // two stages × two data replicas, gradients streamed per slot (ZeRO-2)
    [DataRow("PipelineGpt", 4, 3)] // and parameters gathered into each stage's residency pool when its program needs them (ZeRO-3)
    [DataRow("HybridGpt", 4, 0)]   // two stages × two tensor ranks
    [DataRow("HybridGpt", 4, 0, "bf16")] // stages store fp32 on the device for 16-bit configs, rounding on the host as the CPU does
    [DataRow("PartitionedCheckpointHybridGpt", 4, 0)] // each tensor rank's half of the block inputs copied out of and gathered back into the device arena
    public void PipelinedStagesOnEmulatedDevicesEqualTheCpuJob(string model, int ranks, int zeroStage, string? precision = null)
    {
        using var job = new EmulatedJob(model, zeroStage, precision, zeroSettings: zeroStage == 3 ? StreamedSlots : "");

        var cpu = job.Train("cpu", ranks, Steps, device: "cpu");
        var cuda = job.Train("cuda", ranks, Steps, device: "cuda");

        StringAssert.Contains(cuda.Output, $"ranks: {ranks} = data {ranks / 2 / (model.EndsWith("HybridGpt", StringComparison.Ordinal) ? 2 : 1)} × pipeline 2", cuda.Output);
        StringAssert.Contains(cuda.Output, "stages on CUDA device 0: Shardwise SIMT emulator", cuda.Output);
        StringAssert.Contains(cuda.Output, "stage boundaries: activations and their gradients sent through host memory", cuda.Output); // MPI
        EmulatedJob.AssertSameTraining(cpu.Directory, cuda.Directory, Steps, Tolerance);
        double weights = SafeTensorsFile.RelativeDifference(job.FinalWeights(cpu.Directory), job.FinalWeights(cuda.Directory));
        Assert.IsTrue(weights < Tolerance, $"final weights differ from the CPU job's by {weights:E2} (relative)");
    }

    [TestMethod]
    [DataRow("TwoBlockGpt", 2, 0)] // data parallel at stage 0: the gradient arena averaged in device memory, fused step
    [DataRow("TwoBlockGpt", 2, 1)] // data parallel: the arenas reduce-scattered and all-gathered in place, the norm's all-reduce
    [DataRow("TwoBlockGpt", 3, 1)] // three partitions, the last one padded
    [DataRow("TwoBlockGpt", 2, 2)] // ZeRO-2: slot pieces in device buckets during backward, the partition stepped there
    [DataRow("TwoBlockGpt", 3, 2)] // three pieces per slot, short last pieces
    [DataRow("TwoBlockGpt", 2, 3)] // ZeRO-3: each slot gathered on the device when the program needs it
    [DataRow("TwoBlockGpt", 3, 3)]
    [DataRow("PipelineGpt", 4, 2)] // stages × replicas at ZeRO-2: the model split moves the step back to the host
    [DataRow("PipelineGpt", 4, 3)] // at ZeRO-3 the gathers too (from the host's pieces into the device pool)
    [DataRow("PipelineGpt", 2, 0)] // stages: ncclSend/ncclRecv between them, communicators split from the world
    [DataRow("HybridGpt", 4, 0)]   // and the tensor groups' all-reduces inside every layer
    [DataRow("PartitionedCheckpointHybridGpt", 4, 0)] // and the checkpointed inputs' parts all-gathered in device memory
    public void RanksOverTheEmulatedNcclEqualTheCpuJob(string model, int ranks, int zeroStage)
    {
        using var job = new EmulatedJob(model, zeroStage, zeroSettings: zeroStage == 3 ? StreamedSlots : "");

        var cpu = job.Train("cpu", ranks, Steps, device: "cpu");
        var nccl = job.Train("nccl", ranks, Steps, device: "cuda", communicator: "nccl");

        // Every rank joined the world's NCCL communicator on its own device (the last rank on device ranks − 1).
        StringAssert.Contains(nccl.Output, $"rank {ranks - 1} nranks {ranks} cudaDev {ranks - 1} - Init COMPLETE", nccl.Output);
        string step = model == "TwoBlockGpt" ? DeviceStep(zeroStage, ranks) : "optimizer step: on the host";
        StringAssert.Contains(nccl.Output, step, nccl.Output);
        if (model != "TwoBlockGpt") StringAssert.Contains(nccl.Output, "stage boundaries: activations and their gradients sent device to device (NCCL)", nccl.Output);
        if (model == "HybridGpt") StringAssert.Contains(nccl.Output, "; tensor-parallel all-reduces in device memory (NCCL)", nccl.Output);
        EmulatedJob.AssertSameTraining(cpu.Directory, nccl.Directory, Steps, Tolerance);
        double weights = SafeTensorsFile.RelativeDifference(job.FinalWeights(cpu.Directory), job.FinalWeights(nccl.Directory));
        Assert.IsTrue(weights < Tolerance, $"final weights differ from the CPU job's by {weights:E2} (relative)");
    }

    /// <summary>
    /// ZeRO 1–3 on the device with buckets far smaller than the model (TwoBlockGpt's 1,624 parameters in buckets of 300
    /// and 200 padded elements): many reductions per backward, buckets closed early by a slot that does not fit, slots
    /// larger than a bucket going alone, and many gathers; the run still equals the CPU job's, which buckets the same way
    /// through host memory; at ZeRO-3 a prefetch staging of 700 elements holds a few groups of slots at once, so requests are
    /// served both from prefetched groups and by gathers of their own. The job's memory line is the one `plan` predicts
    /// for a GPU job over NCCL.
    /// </summary>
    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(3)]
    public void DeviceExchangesWithSmallBucketsEqualTheCpuJobAndTheirPlannedMemory(int zeroStage)
    {
        using var job = new EmulatedJob("TwoBlockGpt", zeroStage,
            zeroSettings: "\"reduce_bucket_size\": 300, \"allgather_bucket_size\": 200"
                          + (zeroStage == 3 ? ", " + StreamedSlots + ", \"stage3_prefetch_bucket_size\": 700" : ""));

        var cpu = job.Train("cpu", ranks: 3, Steps, device: "cpu");
        var nccl = job.Train("nccl", ranks: 3, Steps, device: "cuda", communicator: "nccl");

        StringAssert.Contains(nccl.Output, DeviceStep(zeroStage, ranks: 3), nccl.Output);
        EmulatedJob.AssertSameTraining(cpu.Directory, nccl.Directory, Steps, Tolerance);
        double weights = SafeTensorsFile.RelativeDifference(job.FinalWeights(cpu.Directory), job.FinalWeights(nccl.Directory));
        Assert.IsTrue(weights < Tolerance, $"final weights differ from the CPU job's by {weights:E2} (relative)");

        if (zeroStage == 3)
            StringAssert.Matches(nccl.Output, new System.Text.RegularExpressions.Regex("ZeRO-3 parameter gathers: [0-9,]+ requests, [1-9][0-9,]* served from prefetch"));
        AssertPlannedMemoryIsHeld(job.Plan(ranks: 3), nccl.Output);
    }

    /// <summary>
    /// overlap_comm on the device: gradient buckets are queued on NCCL's stream while backward's kernels go on — ranges of
    /// the gradient arena at ZeRO 0, two staging regions filled in turn at ZeRO 2–3 — and completed only when needed.
    /// The run equals the CPU job's (which reduces the same buckets through host memory), the trainer reports buckets
    /// reduced during backward, and the memory line (ZeRO 2–3: the second region) is the plan's. The emulator refuses a
    /// collective that is not ordered after the kernels that wrote its buffers, and a kernel, GEMM or copy on a buffer
    /// whose collective nothing has waited for (tests/cuda-emulator/stream_order.hpp), so a missing wait fails the job.
    /// </summary>
    [TestMethod]
    [DataRow(0, 2)]
    [DataRow(2, 3)]
    [DataRow(3, 2)]
    public void OverlapCommOnTheDeviceEqualsTheCpuJobAndItsPlannedMemory(int zeroStage, int ranks)
    {
        using var job = new EmulatedJob("TwoBlockGpt", zeroStage,
            zeroSettings: "\"overlap_comm\": true, \"reduce_bucket_size\": 300" + (zeroStage == 3 ? ", " + StreamedSlots : ""));

        var cpu = job.Train("cpu", ranks, Steps, device: "cpu");
        var nccl = job.Train("nccl", ranks, Steps, device: "cuda", communicator: "nccl");

        StringAssert.Contains(nccl.Output, DeviceStep(zeroStage, ranks), nccl.Output);
        StringAssert.Matches(nccl.Output, new System.Text.RegularExpressions.Regex("gradient buckets reduced while the last backward ran: [1-9]"), nccl.Output);
        EmulatedJob.AssertSameTraining(cpu.Directory, nccl.Directory, Steps, Tolerance);
        double weights = SafeTensorsFile.RelativeDifference(job.FinalWeights(cpu.Directory), job.FinalWeights(nccl.Directory));
        Assert.IsTrue(weights < Tolerance, $"final weights differ from the CPU job's by {weights:E2} (relative)");

        AssertPlannedMemoryIsHeld(job.Plan(ranks), nccl.Output);
    }

    /// <summary>
    /// ZeRO-2 and 3 on one emulated device: no collective, but the pieces still go from the gradient pool to the partition
    /// and back to the parameter arena (at ZeRO-3 into the residency pool, slot by slot) on the device, and the fused step
    /// runs there; the run equals the CPU job's.
    /// </summary>
    [TestMethod]
    [DataRow(2)]
    [DataRow(3)]
    public void ZeroTwoAndThreeOnOneEmulatedDeviceStepOnTheDeviceLikeTheCpuJob(int zeroStage)
    {
        // No prefetch at ZeRO-3: every slot is gathered alone when the program asks for it.
        using var job = new EmulatedJob("TwoBlockGpt", zeroStage, zeroSettings: zeroStage == 3 ? StreamedSlots + ", \"stage3_prefetch_bucket_size\": 0" : "");

        var cpu = job.Train("cpu", ranks: 1, Steps, device: "cpu");
        var cuda = job.Train("cuda", ranks: 1, Steps, device: "cuda");

        StringAssert.Contains(cuda.Output, $"optimizer step: fused in the backend on the ZeRO-{zeroStage} partition (the whole model on one rank)", cuda.Output);
        if (zeroStage == 3) StringAssert.Matches(cuda.Output, new System.Text.RegularExpressions.Regex("ZeRO-3 parameter gathers: [1-9][0-9,]* requests, 0 served from prefetch"));
        EmulatedJob.AssertSameTraining(cpu.Directory, cuda.Directory, Steps, Tolerance);
        double weights = SafeTensorsFile.RelativeDifference(job.FinalWeights(cpu.Directory), job.FinalWeights(cuda.Directory));
        Assert.IsTrue(weights < Tolerance, $"final weights differ from the CPU job's by {weights:E2} (relative)");
    }

    /// <summary>
    /// ZeRO-3 with offload_param.device = "cpu" on one emulated device: the partitioned parameters (and so the step that
    /// writes them) stay in host memory, and only the residency pool and the slots kept whole live on the device. Before
    /// offload_param was honoured this job took the fused device step above and kept the partition on the device.
    /// </summary>
    [TestMethod]
    public void ZeroThreeWithParameterOffloadKeepsThePartitionOnTheHostLikeTheCpuJob()
    {
        using var job = new EmulatedJob("TwoBlockGpt", 3, zeroSettings: StreamedSlots + ", \"offload_param\": { \"device\": \"cpu\" }");

        var cpu = job.Train("cpu", ranks: 1, Steps, device: "cpu");
        var cuda = job.Train("cuda", ranks: 1, Steps, device: "cuda");

        StringAssert.Contains(cuda.Output, "optimizer step: on the host", cuda.Output);
        Assert.IsFalse(cuda.Output.Contains("fused in the backend", StringComparison.Ordinal), cuda.Output);
        StringAssert.Matches(cuda.Output, new System.Text.RegularExpressions.Regex("ZeRO-3 parameter gathers: [1-9][0-9,]* requests"));
        EmulatedJob.AssertSameTraining(cpu.Directory, cuda.Directory, Steps, Tolerance);
        double weights = SafeTensorsFile.RelativeDifference(job.FinalWeights(cpu.Directory), job.FinalWeights(cuda.Directory));
        Assert.IsTrue(weights < Tolerance, $"final weights differ from the CPU job's by {weights:E2} (relative)");
    }

    /// <summary>
    /// Offload on a GPU job over the fake NCCL: the step runs on the host (ZeRO-1 with the state offloaded to the CPU,
    /// ZeRO-3 with it and the parameter pieces swapped to NVMe), the run equals the CPU job's, and rank 0 holds in host memory exactly what the
    /// plan's placement line says: the masters and moments (or the swap's buffers), the gradients' host copy or pieces,
    /// and the host exchange buffers.
    /// </summary>
    [TestMethod]
    [DataRow(1, "cpu")]
    [DataRow(3, "nvme")]
    public void AnOffloadedJobOverNcclHoldsItsPlannedHostMemory(int zeroStage, string device)
    {
        string swap = System.IO.Directory.CreateTempSubdirectory("shardwise-nccl-swap-").FullName;
        try
        {
            string offload = $"\"offload_optimizer\": {{ \"device\": \"{device}\", \"nvme_path\": \"{swap}\" }}, \"sub_group_size\": 500"
                             + (zeroStage == 3 ? $", \"offload_param\": {{ \"device\": \"{device}\", \"nvme_path\": \"{swap}\" }}" : "");
            using var job = new EmulatedJob("TwoBlockGpt", zeroStage, zeroSettings: offload + (zeroStage == 3 ? ", " + StreamedSlots : ""));

            var cpu = job.Train("cpu", ranks: 2, Steps, device: "cpu");
            var nccl = job.Train("nccl", ranks: 2, Steps, device: "cuda", communicator: "nccl");

            StringAssert.Contains(nccl.Output, "optimizer step: on the host; gradients reduced over 2 ranks through host memory", nccl.Output);
            if (device == "nvme") StringAssert.Contains(nccl.Output, "masters and moments swapped to NVMe under " + swap, nccl.Output);
            if (zeroStage == 3) StringAssert.Contains(nccl.Output, "parameter pieces swapped to NVMe under " + swap, nccl.Output);
            EmulatedJob.AssertSameTraining(cpu.Directory, nccl.Directory, Steps, Tolerance);
            string plan = job.Plan(ranks: 2);
            StringAssert.DoesNotMatch(plan, new System.Text.RegularExpressions.Regex("placed: device [^,]*, host 0B"), "offload puts bytes in host memory");
            AssertPlannedMemoryIsHeld(plan, nccl.Output);
        }
        finally
        {
            System.IO.Directory.Delete(swap, recursive: true);
        }
    }

    /// <summary>
    /// OneBitAdam, OneBitLamb and ZeroOneAdam on a GPU job over the fake NCCL: its all-to-all goes through NCCL's point-to-point calls and each rank
    /// steps on the host. The same job over the host-staged MPI path computes the same gradients on the same emulated
    /// devices, so the two must agree step by step (the two-rank averages are a + b either way); against the CPU job
    /// they would not: the devices' rounding flips a compressed sign now and then, and a flipped sign moves an element
    /// by 2·lr (measured at lr 1e-2: 2.4% apart in loss at step 6).
    /// </summary>
    [TestMethod]
    [DataRow("OneBitAdam", "\"lr\": 3e-3")]
    [DataRow("OneBitLamb", "\"lr\": 3e-2, \"coeff_beta\": 0.5")]
    [DataRow("ZeroOneAdam", "\"lr\": 3e-3, \"var_update_scaler\": 1, \"local_step_scaler\": 1")]
    public void OneBitOptimizersOverNcclEqualTheSameJobOverMpi(string optimizer, string settings)
    {
        string freeze = optimizer == "ZeroOneAdam" ? "var_freeze_step" : "freeze_step";
        using var job = new EmulatedJob("TwoBlockGpt", 0, optimizer: $"{{ \"type\": \"{optimizer}\", \"params\": {{ {settings}, \"weight_decay\": 0.1, \"{freeze}\": 3 }} }}");

        var mpi = job.Train("mpi", ranks: 2, Steps, device: "cuda", communicator: "mpi");
        var nccl = job.Train("nccl", ranks: 2, Steps, device: "cuda", communicator: "nccl");

        StringAssert.Contains(nccl.Output, "1-bit compression", nccl.Output);
        StringAssert.Contains(nccl.Output, "Init COMPLETE", "the job ran over the fake NCCL");
        EmulatedJob.AssertSameTraining(mpi.Directory, nccl.Directory, Steps, Tolerance);
        double weights = SafeTensorsFile.RelativeDifference(job.FinalWeights(mpi.Directory), job.FinalWeights(nccl.Directory));
        Assert.IsTrue(weights < Tolerance, $"final weights differ by {weights:E2} (relative)");
    }

    /// <summary>
    /// The plan's GPU line and its placement line ("placed: device X, host Y") are what rank 0's trainer reports holding
    /// ("memory: categories (device X, host Y)").
    /// </summary>
    private static void AssertPlannedMemoryIsHeld(string plan, string trainerOutput)
    {
        var planLines = plan.Split('\n');
        int gpu = Array.FindIndex(planLines, line => line.Contains("GPU, NCCL between ranks", StringComparison.Ordinal));
        string memory = trainerOutput.Split('\n').First(line => line.StartsWith("memory: ", StringComparison.Ordinal))["memory: ".Length..].Trim();
        int open = memory.IndexOf(" (device ", StringComparison.Ordinal);
        string held = memory[..open], placement = memory[(open + 2)..^1];
        Console.WriteLine($"planned: {planLines[gpu].Trim()} / {planLines[gpu + 1].Trim()}\nheld:    {held} / {placement}");
        StringAssert.Contains(planLines[gpu], held + "  total", "the plan's GPU line must be what rank 0 holds");
        StringAssert.Contains(planLines[gpu + 1], "placed: " + placement + " (", "and placed where rank 0 holds it");
    }

    /// <summary>How the trainer's log describes the device step of a data-parallel job over NCCL at ZeRO 0 or 1.</summary>
    private static string DeviceStep(int zeroStage, int ranks) => zeroStage switch
    {
        0 => $"fused in the backend; gradients averaged over {ranks} ranks in device memory (NCCL)",
        1 => $"gradients averaged by reduce-scatter and parameters all-gathered over {ranks} ranks in device memory (NCCL)",
        2 => $"gradients averaged by reduce-scatter during backward and parameters all-gathered over {ranks} ranks in device memory (NCCL)",
        _ => $"gradients averaged by reduce-scatter during backward and parameters all-gathered when needed over {ranks} ranks in device memory (NCCL)",
    };
}
