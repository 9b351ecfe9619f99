using System;

namespace Shardwise.Training.Offload;

/// <summary>
/// The NVMe swap could not be set up or used: its directory is missing or not writable, or the disk has too little
/// room. The message names the config path (zero_optimization.offload_optimizer.nvme_path) and the directory.
/// </summary>
public sealed class OffloadException(string message, Exception? inner = null) : Exception(message, inner);
