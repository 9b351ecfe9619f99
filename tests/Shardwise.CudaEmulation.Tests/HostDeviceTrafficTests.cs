using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Cpu;
using Shardwise.Cuda;
using Shardwise.Distributed.InProcess;
using Shardwise.Examples;
using Shardwise.Kernels.Tests.Infrastructure;
using Shardwise.Ops;
using Shardwise.Pipeline.Probe;
using Shardwise.Plans;
using Shardwise.Training.Config;
using Shardwise.Training.Engine;
using Shardwise.Training.Pipeline;

namespace Shardwise.CudaEmulation.Tests;

/// <summary>
/// What crosses the bus in a training step on CudaOps, read from its host ↔ device counters
/// (<see cref="CudaOps.HostDeviceTraffic"/>): a single-rank fused step moves the batch and a few scalars, no arena;
/// a pipeline stage's exchanges and the tensor-parallel all-reduces move their slice, not the activation arena.
/// </summary>
[TestClass]
public sealed class HostDeviceTrafficTests
{
    private const int Batch = 1;

    /// <summary>
    /// TinyGpt, one micro-batch of 1 × 64 tokens per step, fp32 AdamW through the fused device step. After a warm-up
    /// step, one step moves up the ids and targets (2 · rows ints) and the embedding gradient's row grouping for the
    /// token and the position embeddings (≤ 3 · rows + 1 ints each), and down the loss and the fused step's Σg² and
    /// overflow flag: at most 4 · (8 · rows + 2) bytes up and 64 bytes down. A View of the parameters in a step (what
    /// the host step or a whole-arena exchange does) breaks that bound by the arena, both ways.
    /// </summary>
    [TestMethod]
    public void AFusedTinyGptStepMovesOnlyTheBatchAndScalars()
    {
        using CudaOps gpu = GpuSupport.RequireCudaOps();
        var config = DeepSpeedConfig.Parse($$"""
            { "train_micro_batch_size_per_gpu": {{Batch}}, "gradient_accumulation_steps": 1, "gradient_clipping": 1.0,
              "optimizer": { "type": "AdamW", "params": { "lr": 1e-3, "weight_decay": 0.1 } } }
            """).Config;
        CompiledLanguageModel<float> program = TinyGpt.Compile<float>(gpu, Batch);
        TinyGpt.ParameterLayout.Initialize(program.Parameters, seed: 11);
        TrainingEngine engine = TrainingEngine.Initialize(program, config);
        Assert.IsTrue(engine.FusedOptimizer, "fp32, one rank, ZeRO 0 on CudaOps takes the fused step");

        int rows = Batch * program.SequenceLength;
        var random = new Random(17);
        var inputs = new int[rows];
        var targets = new int[rows];
        void Step()
        {
            for (int i = 0; i < rows; i++)
            {
                inputs[i] = random.Next(TinyGpt.Vocabulary);
                targets[i] = random.Next(TinyGpt.Vocabulary);
            }
            float loss = engine.Forward(inputs, targets);
            Assert.IsTrue(float.IsFinite(loss) && loss > 1, $"loss {loss}");
            engine.Backward();
            Assert.AreEqual(StepOutcome.Updated, engine.Step());
        }

        Step(); // warm-up: scratch grows, the optimizer state is created
        HostDeviceTraffic before = gpu.HostDeviceTraffic;
        long reused = gpu.SoftmaxStatisticsReused;
        Step();
        HostDeviceTraffic step = gpu.HostDeviceTraffic - before;
        // The generated backward starts with the cross-entropy, right after the forward's: it reads the logits once.
        Assert.AreEqual(reused + 1, gpu.SoftmaxStatisticsReused, "the step's cross-entropy backward takes the forward's row statistics");
        Console.WriteLine($"one fused TinyGpt step, {rows} rows: {step}");

        long upBound = 4L * (2 * rows + 2 * (3 * rows + 1)), downBound = 64;
        Assert.IsTrue(step.BytesUp >= 2L * rows * sizeof(int), $"the ids and targets must go up: {step}");
        Assert.IsTrue(step.BytesUp <= upBound, $"bytes up {step.BytesUp} > {upBound}: {step}");
        Assert.IsTrue(step.BytesDown <= downBound, $"bytes down {step.BytesDown} > {downBound}: {step}");
        Assert.IsTrue(step.Copies <= 8, $"copies: {step}");
        Assert.IsFalse(engine.Optimizer.State.MomentsAllocated, "the fused step keeps no host Adam moments");

        // The same step with a View forced in it: the bound no longer holds (this is what the test catches).
        long parameterBytes = program.Layout.TotalElements * sizeof(float);
        before = gpu.HostDeviceTraffic;
        gpu.View(Arena.Parameters);
        Step();
        HostDeviceTraffic viewed = gpu.HostDeviceTraffic - before;
        Console.WriteLine($"the same step with View(Parameters): {viewed}");
        Assert.IsTrue(viewed.BytesDown >= parameterBytes && viewed.BytesDown > downBound, $"a View downloads the arena: {viewed}");
        Assert.IsTrue(viewed.BytesUp >= parameterBytes && viewed.BytesUp > upBound, $"and uploads it again: {viewed}");

        // A checkpoint reads the moments into arrays of its own; the optimizer still holds none.
        var (master, expAvg, expAvgSq) = engine.ExportFullState();
        Assert.AreEqual(program.Layout.TotalElements, expAvg.Length);
        Assert.IsTrue(SumOfSquares(expAvg) > 0 && SumOfSquares(expAvgSq) > 0 && SumOfSquares(master) > 0, "the moments were read from the device");
        Assert.IsFalse(engine.Optimizer.State.MomentsAllocated, "a checkpoint leaves no host moments behind");
    }

    /// <summary>
    /// A two-stage pipeline in one process (<see cref="ChainModel"/>, stage 0 on the emulated device, stage 1 on the
    /// CPU, the in-process communicator): after a warm-up batch, sending the activation of a micro-batch downloads
    /// exactly the partition's boundary activation (rows × width floats, one copy) and receiving its gradient uploads
    /// exactly that much, where a view of the arena would move the whole activation window; the values arrive intact.
    /// </summary>
    [TestMethod]
    public void PipelineExchangesMoveOnlyTheBoundarySlice()
    {
        using CudaOps gpu = GpuSupport.RequireCudaOps();
        var model = new ChainModel(Vocabulary: 16, Width: 16, Blocks: 4, Sequence: 8);
        ModelPartition partition = model.Partition(2, 1);
        const int microBatches = 2;
        var results = InProcessGroup.Run(2, world =>
        {
            using var groups = ParallelGroups.Create(world, partition);
            int index = groups.Coordinates.Stage;
            StagePlan plan = partition.Stages[index];
            ITensorOps<float> ops = index == 0 ? gpu : new CpuOps<float>();
            var stage = new ChainStage(model, plan, ops, ChainTraining.MicroBatch);
            PartitionedParameters.Extract(model.FullLayout(), ChainTraining.InitialWeights(model), plan, 0, stage.Parameters);
            var engine = new PipelineEngine(stage, ChainTraining.Config(microBatches), groups);
            var (tokens, targets) = ChainTraining.GlobalBatch(model, 0, microBatches);
            engine.TrainBatch(tokens, targets); // warm-up: mirrors, scratch and windows exist

            // Micro-batch 0 of the next batch by hand, so the counters see each exchange alone.
            (tokens, targets) = ChainTraining.GlobalBatch(model, 1, microBatches);
            engine.TrainBatch(tokens, targets);
            var record = new StageRecord();
            if (index == 0)
            {
                engine.Forward(0, 0);
                HostDeviceTraffic before = gpu.HostDeviceTraffic;
                engine.SendActivation(0, 0);
                record.Send = gpu.HostDeviceTraffic - before;
                record.Sent = Read(ops, stage.SentActivation);
                before = gpu.HostDeviceTraffic;
                engine.ReceiveGradient(0, 0);
                record.Receive = gpu.HostDeviceTraffic - before;
                record.Received = Read(ops, stage.OutputGradient);
                record.BoundaryElements = plan.SentElementsPerSample * ChainTraining.MicroBatch; // the partition's boundary
                record.ActivationWindowElements = plan.Activations.ArenaElementsPerSample * ChainTraining.MicroBatch;
            }
            else
            {
                engine.ReceiveActivation(0, 0);
                record.Received = Read(ops, stage.ReceivedActivation);
                engine.Forward(0, 0);
                engine.Backward(0, 0);
                record.Sent = Read(ops, stage.InputGradient);
                engine.SendGradient(0, 0);
            }
            return record;
        }, TimeSpan.FromMinutes(2));

        StageRecord first = results[0], second = results[1];
        Console.WriteLine($"send activation: {first.Send}; receive gradient: {first.Receive}; boundary {first.BoundaryElements} floats, " +
                          $"activation window {first.ActivationWindowElements} floats");
        Assert.IsTrue(first.BoundaryElements > 0 && first.ActivationWindowElements > 4 * first.BoundaryElements,
            "the boundary must be a small part of the window, or the test cannot tell a slice from the arena");
        Assert.AreEqual(new HostDeviceTraffic(first.BoundaryElements * sizeof(float), 1, 0, 0), first.Send, "sending the activation");
        Assert.AreEqual(new HostDeviceTraffic(0, 0, first.BoundaryElements * sizeof(float), 1), first.Receive, "receiving the gradient");
        CollectionAssert.AreEqual(first.Sent, second.Received, "the activation arrived intact");
        CollectionAssert.AreEqual(second.Sent, first.Received, "the gradient arrived intact");
        Assert.IsTrue(SumOfSquares(first.Sent) > 0 && SumOfSquares(second.Sent) > 0, "real values, not zeros");
    }

    /// <summary>
    /// The tensor-parallel group's all-reduces (one rank, so the sum and max are the values themselves) on a slice in
    /// the middle of a 64 Ki-float activation arena: the slice goes down once and up once, the arena around it is not
    /// touched, and the values come back unchanged.
    /// </summary>
    [TestMethod]
    public void TensorParallelAllReducesMoveOnlyTheirSlice()
    {
        using CudaOps gpu = GpuSupport.RequireCudaOps();
        const int arenaElements = 65536;
        gpu.Allocate(Arena.Activations, arenaElements);
        var random = new Random(23);
        var arena = new float[arenaElements];
        for (int i = 0; i < arena.Length; i++) arena[i] = (float)(random.NextDouble() * 2 - 1);
        gpu.Load(arena, new Slice(Arena.Activations, 0, arenaElements));
        var slice = new Slice(Arena.Activations, 1000, 300);
        var group = new CommunicatorTensorParallelGroup(gpu, new Shardwise.Distributed.SingleProcessCommunicator());

        HostDeviceTraffic before = gpu.HostDeviceTraffic;
        group.AllReduceSum(slice);
        HostDeviceTraffic sum = gpu.HostDeviceTraffic - before;
        before = gpu.HostDeviceTraffic;
        group.AllReduceMax(slice);
        HostDeviceTraffic max = gpu.HostDeviceTraffic - before;

        var expected = new HostDeviceTraffic(slice.Length * sizeof(float), 1, slice.Length * sizeof(float), 1);
        Assert.AreEqual(expected, sum, "AllReduceSum");
        Assert.AreEqual(expected, max, "AllReduceMax");
        var back = new float[arenaElements];
        gpu.Store(new Slice(Arena.Activations, 0, arenaElements), back);
        CollectionAssert.AreEqual(arena, back, "one rank's all-reduces leave every value as it was");
    }

    private static double SumOfSquares(float[] values)
    {
        double sum = 0;
        foreach (float v in values) sum += (double)v * v;
        return sum;
    }

    private static float[] Read(ITensorOps<float> ops, Slice slice)
    {
        var values = new float[slice.Length];
        ops.Store(slice, values);
        return values;
    }

    private sealed class StageRecord
    {
        public HostDeviceTraffic Send, Receive;
        public float[] Sent = [], Received = [];
        public long BoundaryElements, ActivationWindowElements;
    }
}
