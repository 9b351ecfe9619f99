namespace Shardwise.Training.Config;

/// <summary>
/// The one place where default values live. DeepSpeed spreads its defaults over constants.py, pydantic
/// models and the docs, and they drift apart; each value here says which of them it follows and why.
/// The parser is the only consumer: a section that is absent from the file is parsed as "{}" so that
/// absent and empty sections get exactly these values.
/// </summary>
public static class ConfigDefaults
{
    // --- top level (deepspeed/runtime/constants.py) ---

    /// <summary>The code default is None (no progress log); the docs say 10. We follow the docs, as the lead asked.</summary>
    public const int StepsPerPrint = 10;

    /// <summary>The code default (constants.py:214): 0.0 = no clipping. The docs' 1.0 is wrong.</summary>
    public const double GradientClipping = 0.0;

    public const bool WallClockBreakdown = false;
    public const bool MemoryBreakdown = false;
    public const bool DumpState = false;

    // --- optimizer (FusedAdam / torch.optim.Adam constructor defaults) ---

    public const double LearningRate = 1e-3;
    public const double Beta1 = 0.9;
    public const double Beta2 = 0.999;
    public const double Eps = 1e-8;
    public const double WeightDecay = 0.0;

    /// <summary>DeepSpeed's "Adam" defaults to adam_w_mode=true, i.e. it behaves as AdamW unless told otherwise.</summary>
    public const bool AdamWMode = true;

    public const bool TorchAdam = false;
    public const bool BiasCorrection = true;

    // --- fp16 (documented defaults; see Fp16Config for the quirk we deliberately do not copy) ---

    public const double LossScale = 0.0;
    public const int InitialScalePower = 16;
    public const int LossScaleWindow = 1000;
    public const int Hysteresis = 2;
    public const bool ConsecutiveHysteresis = false;
    public const double MinLossScale = 1.0;
    public const bool AutoCast = false;

    // --- zero_optimization (deepspeed/runtime/zero/config.py) ---

    public const int ZeroStage = 0;
    public const bool ContiguousGradients = true;
    public const bool ReduceScatter = true;
    public const bool AllgatherPartitions = true;
    public const long ReduceBucketSize = 500_000_000;
    public const long AllgatherBucketSize = 500_000_000;

    /// <summary>Code default 5e7 (the docs' 5e8 is wrong).</summary>
    public const long Stage3PrefetchBucketSize = 50_000_000;

    public const long Stage3ParamPersistenceThreshold = 100_000;
    public const long Stage3MaxLiveParameters = 1_000_000_000;
    public const long Stage3MaxReuseDistance = 1_000_000_000;
    public const bool Stage3Gather16BitWeightsOnModelSave = false;
    public const long SubGroupSize = 1_000_000_000;

    /// <summary>DeepSpeed's OnebitAdam: steps of full-precision Adam before the compressed stage (its freeze_step default).</summary>
    public const long OneBitFreezeStep = 100_000;
    public const bool ElasticCheckpoint = false;
    public const bool RoundRobinGradients = false;

    /// <summary>overlap_comm has no fixed default: None means "true iff stage 3" (docs say false).</summary>
    public static bool OverlapComm(int stage) => stage == 3;

    // --- offload (deepspeed/runtime/zero/offload_config.py) ---

    public const bool PinMemory = false;
    public const int OptimizerOffloadBufferCount = 4;
    public const int ParamOffloadBufferCount = 5;
    public const long ParamOffloadBufferSize = 100_000_000;
    public const long ParamOffloadMaxInCpu = 1_000_000_000;
    public const double OffloadRatio = 1.0;
    public const bool FastInit = false;

    // --- schedulers (deepspeed/runtime/lr_schedules.py) ---

    public const double WarmupMinLr = 0.0;
    public const double WarmupMaxLr = 1e-3;
    public const long WarmupNumSteps = 1000;
    public const string WarmupType = "log";
    public const double WarmupMinRatio = 0.0;
    public const double CosMinRatio = 1e-4;

    // --- activation checkpointing / pipeline / checkpoint ---

    public const bool ActivationCheckpointingFlag = false;
    public const string PipelinePartition = "best";
    public const bool PipelineSeedLayers = false;
    public const int PipelineActivationCheckpointInterval = 0;
    public const bool PipelinePipePartitioned = true;
    public const bool PipelineGradPartitioned = true;
    public const string CheckpointTagValidation = "Warn";
    public const bool CheckpointLoadUniversal = false;
    public const bool CheckpointUseNodeLocalStorage = false;
}
