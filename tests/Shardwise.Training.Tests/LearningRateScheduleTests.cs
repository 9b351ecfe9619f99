using System;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Shardwise.Training.Config;
using Shardwise.Training.Optim;

namespace Shardwise.Training.Tests;

/// <summary>Expected values are computed here straight from DeepSpeed's lr_schedules.py formulas.</summary>
[TestClass]
public sealed class LearningRateScheduleTests
{
    private const double Tolerance = 1e-15;

    [TestMethod]
    [DataRow(0L)]
    [DataRow(1L)]
    [DataRow(50L)]
    [DataRow(99L)]
    [DataRow(100L)]
    [DataRow(5000L)]
    public void WarmupLR_Log(long step)
    {
        const double Min = 1e-5, Max = 1e-3;
        var expected = step < 100 ? Min + ((Max - Min) * Math.Log(step + 1) / Math.Log(100)) : Max;
        Assert.AreEqual(expected, new WarmupLR(Min, Max, 100, WarmupType.Log).LearningRate(step), Tolerance);
    }

    [TestMethod]
    public void WarmupLR_LogAtKnownPoints()
    {
        var schedule = new WarmupLR(0, 1e-3, 100, WarmupType.Log);
        Assert.AreEqual(0.0, schedule.LearningRate(0));                  // ln(1) = 0
        Assert.AreEqual(0.5e-3, schedule.LearningRate(9), 1e-15);         // ln(10)/ln(100) = 1/2
        Assert.AreEqual(1e-3, schedule.LearningRate(99), 1e-15);          // ln(100)/ln(100) = 1
    }

    [TestMethod]
    [DataRow(0L, 0.0)]
    [DataRow(25L, 0.25)]
    [DataRow(99L, 0.99)]
    [DataRow(100L, 1.0)]
    [DataRow(7000L, 1.0)]
    public void WarmupLR_Linear(long step, double gamma)
    {
        const double Min = 2e-5, Max = 4e-4;
        Assert.AreEqual(Min + ((Max - Min) * gamma), new WarmupLR(Min, Max, 100, WarmupType.Linear).LearningRate(step), Tolerance);
    }

    [TestMethod]
    public void WarmupLR_ClampsWarmupStepsToTwo()
    {
        var schedule = new WarmupLR(0.1, 0.2, 0, WarmupType.Log);
        Assert.AreEqual(2, schedule.WarmupNumSteps);
        Assert.AreEqual(0.1, schedule.LearningRate(0), Tolerance);
        Assert.AreEqual(0.2, schedule.LearningRate(1), Tolerance);        // ln(2)/ln(2)
        Assert.AreEqual(0.2, schedule.LearningRate(2), Tolerance);
    }

    [TestMethod]
    [DataRow(0L)]
    [DataRow(50L)]
    [DataRow(99L)]
    [DataRow(100L)]
    [DataRow(550L)]
    [DataRow(999L)]
    [DataRow(1000L)]
    [DataRow(1200L)]
    public void WarmupDecayLR_MatchesFormula(long step)
    {
        const double Min = 1e-6, Max = 1e-5;
        const long N = 100, T = 1000;
        var gamma = step < N ? Math.Log(step + 1) / Math.Log(N) : Math.Max(0.0, (double)(T - step) / (T - N));
        var schedule = new WarmupDecayLR(Min, Max, N, T, WarmupType.Log);
        Assert.AreEqual(Min + ((Max - Min) * gamma), schedule.LearningRate(step), Tolerance);
    }

    [TestMethod]
    public void WarmupDecayLR_KnownPoints()
    {
        var schedule = new WarmupDecayLR(0, 1e-3, 100, 1000, WarmupType.Linear);
        Assert.AreEqual(1e-3, schedule.LearningRate(100), Tolerance);     // (1000-100)/900 = 1
        Assert.AreEqual(0.5e-3, schedule.LearningRate(550), Tolerance);   // 450/900
        Assert.AreEqual(0.0, schedule.LearningRate(1000));
        Assert.AreEqual(0.0, schedule.LearningRate(1500));                // max(0, ...) after T
    }

    [TestMethod]
    [DataRow(0L)]
    [DataRow(50L)]
    [DataRow(99L)]
    [DataRow(100L)]
    [DataRow(300L)]
    [DataRow(549L)]
    [DataRow(998L)]
    [DataRow(999L)]
    public void WarmupCosineLR_MatchesFormula(long step)
    {
        const double Lr = 1e-5, MinRatio = 0.02, CosMin = 0.2;
        const long N = 100, T = 1000;
        double ratio;
        if (step < N)
        {
            ratio = MinRatio + ((1 - MinRatio) * Math.Log(step + 1) / Math.Log(N));
        }
        else
        {
            var cosine = (1 + Math.Cos(Math.PI * (step - N + 1) / (T - N))) / 2;
            ratio = Math.Max(0, CosMin + ((1 - CosMin) * cosine));
        }

        var schedule = new WarmupCosineLR(Lr, T, MinRatio, N, CosMin, WarmupType.Log);
        Assert.AreEqual(Lr * ratio, schedule.LearningRate(step), 1e-20);
    }

    [TestMethod]
    public void WarmupCosineLR_KnownPoints()
    {
        var schedule = new WarmupCosineLR(1e-3, 1000, 0.02, 100, 0.2, WarmupType.Linear);
        Assert.AreEqual(0.02e-3, schedule.LearningRate(0), 1e-18);            // warmup starts at warmup_min_ratio·lr
        Assert.AreEqual((0.02 + (0.98 * 0.5)) * 1e-3, schedule.LearningRate(50), 1e-18);
        Assert.AreEqual(0.6e-3, schedule.LearningRate(549), 1e-15);           // cos(π/2) = 0: halfway down
        Assert.AreEqual(0.2e-3, schedule.LearningRate(999), 1e-15);           // cos(π) = -1: cos_min_ratio·lr
        Assert.IsTrue(schedule.LearningRate(100) < 1e-3, "step N is already one cosine step in");
    }

    [TestMethod]
    public void WarmupCosineLR_HoldsTheMinimumAfterTotalSteps()
    {
        // Upstream's cosine would climb again past T; Shardwise holds cos_min_ratio·lr.
        var schedule = new WarmupCosineLR(1e-3, 1000, 0.0, 100, 0.1, WarmupType.Log);
        Assert.AreEqual(1e-4, schedule.LearningRate(1000), 1e-15);
        Assert.AreEqual(1e-4, schedule.LearningRate(1800), 1e-15);
    }

    [TestMethod]
    public void Factory_BuildsFromConfig()
    {
        var config = DeepSpeedConfig.Parse("""
            {"train_batch_size": 8,
             "optimizer": {"type": "AdamW", "params": {"lr": 3e-4}},
             "scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": 500, "warmup_num_steps": 50, "warmup_type": "linear", "cos_min_ratio": 0.1}}}
            """).Config;
        var schedule = LearningRateScheduleFactory.Create(config);
        Assert.IsInstanceOfType<WarmupCosineLR>(schedule);
        Assert.AreEqual(3e-4 * 10 / 50.0, schedule.LearningRate(10), 1e-18); // warmup_min_ratio default 0
        Assert.AreEqual(3e-4 * 0.1, schedule.LearningRate(499), 1e-15);
    }

    [TestMethod]
    public void Factory_NoScheduler_IsConstantOptimizerLr()
    {
        var config = DeepSpeedConfig.Parse("""{"train_batch_size": 8, "optimizer": {"type": "Adam", "params": {"lr": 0.0123}}}""").Config;
        var schedule = LearningRateScheduleFactory.Create(config);
        Assert.AreEqual(0.0123, schedule.LearningRate(0));
        Assert.AreEqual(0.0123, schedule.LearningRate(123456));
    }

    [TestMethod]
    public void Factory_WarmupDecayLR_FromConfig33()
    {
        var config = DeepSpeedConfig.Load(TestPaths.Config("33_transpeeder_warmupdecaylr_wandb.json")).Config;
        var schedule = LearningRateScheduleFactory.Create(config);
        Assert.AreEqual(1e-6, schedule.LearningRate(0), 1e-20);
        Assert.AreEqual(1e-5, schedule.LearningRate(100), 1e-18);
        Assert.AreEqual(1e-6 + (9e-6 * 450 / 900.0), schedule.LearningRate(550), 1e-18);
        Assert.AreEqual(1e-6, schedule.LearningRate(1000), 1e-20); // decays to warmup_min_lr, not 0
    }

    /// <summary>
    /// OneCycle against a replay of DeepSpeed's object as the engine drives it: the constructor sets lr = cycle_min_lr
    /// and betas = (cycle_min_mom, 0.99), and after every optimizer step step() advances last_batch_iteration and sets
    /// lr from get_lr() and betas from get_mom() (which read last_batch_iteration + 1 inside the cycle). Optimizer
    /// step k runs with what the previous k − 1 scheduler steps left, which must be our schedule at step k − 1. Config
    /// 12's parameters (a 1000 + 100 step cycle, then decay every 1000 steps at rate 0.01), and a cycle with momentum
    /// decay.
    /// </summary>
    [TestMethod]
    public void OneCycle_FollowsDeepSpeedsSchedulerObjectStepByStep()
    {
        foreach (var config in new[]
                 {
                     new OneCycleConfig { CycleMinLr = 0.004, CycleMaxLr = 0.015, CycleFirstStepSize = 1000, CycleSecondStepSize = 100, DecayStepSize = 1000, DecayLrRate = 0.01 },
                     new OneCycleConfig { CycleMinLr = 1e-4, CycleMaxLr = 4e-3, CycleFirstStepSize = 7, CycleSecondStepSize = 13, DecayStepSize = 5, DecayLrRate = 0.5, DecayMomRate = 0.01 },
                 })
        {
            var schedule = new OneCycle(config);
            var replay = new DeepSpeedOneCycleReplay(config);
            for (long k = 1; k <= 2500; k++)
            {
                Assert.AreEqual(replay.Lr, schedule.LearningRate(k - 1), 1e-15, $"lr of optimizer step {k}");
                var betas = schedule.Betas(k - 1);
                Assert.IsNotNull(betas);
                Assert.AreEqual(replay.Beta1, betas.Value.Beta1, 1e-15, $"β1 of optimizer step {k}");
                Assert.AreEqual(0.99, betas.Value.Beta2, $"β2 of optimizer step {k}");
                replay.Step();
            }
        }
    }

    [TestMethod]
    public void OneCycle_AtKnownPointsOfConfig12()
    {
        var schedule = LearningRateScheduleFactory.Create(DeepSpeedConfig.Load(TestPaths.Config("12_dse_qanet_onecycle.json")).Config);
        // total 1100 steps, the rise 1000/1100 of it.
        Assert.AreEqual(0.004, schedule.LearningRate(0), 1e-15);
        Assert.AreEqual((0.8, 0.99), schedule.Betas(0));                          // the constructor's betas
        Assert.AreEqual(0.0095, schedule.LearningRate(500), 1e-15);               // halfway up
        Assert.AreEqual(0.85, schedule.Betas(500)!.Value.Beta1, 1e-15);
        Assert.AreEqual(0.015, schedule.LearningRate(1000), 1e-15);               // the top: β1 at its minimum
        Assert.AreEqual(0.8, schedule.Betas(1000)!.Value.Beta1, 1e-15);
        Assert.AreEqual(0.0095, schedule.LearningRate(1050), 1e-15);              // halfway down
        Assert.AreEqual(0.004, schedule.LearningRate(1100), 1e-15);               // the cycle's end
        Assert.AreEqual(0.9, schedule.Betas(1100)!.Value.Beta1, 1e-15);
        Assert.AreEqual(0.004 / 1.01, schedule.LearningRate(2100), 1e-15);        // one decay interval on
        Assert.AreEqual(0.9, schedule.Betas(2100)!.Value.Beta1, 1e-15);           // decay_mom_rate 0: β1 stays
    }

    [TestMethod]
    public void OneCycle_WithoutCycleMomentum_LeavesTheBetasToTheOptimizer()
    {
        var schedule = new OneCycle(new OneCycleConfig { CycleMinLr = 1e-3, CycleMaxLr = 1e-2, CycleSecondStepSize = 2000, CycleMomentum = false });
        Assert.IsNull(schedule.Betas(0));
        Assert.IsNull(schedule.Betas(1500));
        Assert.AreEqual(1e-3 + (9e-3 * 0.75), schedule.LearningRate(1500), 1e-15);
    }

    [TestMethod]
    [DataRow(false, 0L, 1e-3)]
    [DataRow(false, 1000L, 1.5e-3)]
    [DataRow(false, 4000L, 3e-3)]
    [DataRow(true, 1999L, 1e-3)]
    [DataRow(true, 2000L, 2e-3)]
    [DataRow(true, 5999L, 3e-3)]
    public void LRRangeTest_GrowsLinearlyOrInStairs(bool staircase, long step, double expected)
    {
        // DeepSpeed: min · (1 + rate · (last_batch_iteration + 1)/step_size), floored with staircase; our step is
        // last_batch_iteration + 1 (step 0 is the constructor's min).
        ILearningRateSchedule schedule = new LRRangeTest(new LrRangeTestConfig { MinLr = 1e-3, StepSize = 2000, StepRate = 1.0, Staircase = staircase });
        Assert.AreEqual(expected, schedule.LearningRate(step), 1e-18);
        Assert.IsNull(schedule.Betas(step));
    }

    /// <summary>DeepSpeed's OneCycle object, transcribed as state: last_batch_iteration, lr and betas.</summary>
    private sealed class DeepSpeedOneCycleReplay(OneCycleConfig config)
    {
        private readonly double total = config.CycleFirstStepSize + (double)config.CycleSecondStepSize;
        private long lastBatchIteration = -1;

        public double Lr { get; private set; } = config.CycleMinLr;

        public double Beta1 { get; private set; } = config.CycleMinMom;

        public void Step()
        {
            lastBatchIteration++;
            if (lastBatchIteration < total)
            {
                double batchIteration = lastBatchIteration + 1;
                double cycle = Math.Floor(1 + (batchIteration / total));
                double x = 1 + (batchIteration / total) - cycle, ratio = config.CycleFirstStepSize / total;
                double scale = x <= ratio ? x / ratio : (x - 1) / (ratio - 1);
                Lr = config.CycleMinLr + ((config.CycleMaxLr - config.CycleMinLr) * scale);
                Beta1 = config.CycleMaxMom - ((config.CycleMaxMom - config.CycleMinMom) * scale);
                return;
            }

            double interval = (lastBatchIteration - total + 1) / config.DecayStepSize;
            bool noDecay = config.DecayStepSize == 0;
            Lr = noDecay || config.DecayLrRate == 0 ? config.CycleMinLr : config.CycleMinLr / (1 + (config.DecayLrRate * interval));
            Beta1 = noDecay || config.DecayMomRate == 0 ? config.CycleMaxMom : config.CycleMaxMom * (1 + (config.DecayMomRate * interval));
        }
    }

    [TestMethod]
    public void NegativeStep_IsACallerBug()
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new WarmupLR(0, 1, 10, WarmupType.Log).LearningRate(-1));
    }
}
