using System.IO;
using Shardwise.Distributed;
using Shardwise.Training.Config;

namespace Shardwise.Training.Cli;

/// <summary>Puts the comms_logger around a job's communicator when the config asks for it.</summary>
internal static class CommsLogging
{
    /// <summary>
    /// The communicator to train with and its log: a <see cref="LoggingCommunicator"/> when comms_logger is enabled, else
    /// the communicator itself and no log. An NCCL communicator (a device collective) stays unwrapped, since the device
    /// path recognises it by type: its calls are not logged.
    /// </summary>
    public static (ICommunicator Communicator, CommsLog? Log) Wrap(ICommunicator communicator, CommsLoggerConfig config, TextWriter output)
    {
        if (!config.Enabled || communicator is Shardwise.Ops.IDeviceCollective) return (communicator, null);
        var log = new CommsLog(config.Only, config.Verbose && communicator.Rank == 0 ? output : null);
        return (new LoggingCommunicator(communicator, log), log);
    }

    /// <summary>Rank 0's summary at the end of a run (nothing without a log).</summary>
    public static void Report(CommsLog? comms, TextWriter log)
    {
        if (comms is null) return;
        log.WriteLine(comms.Records.Count == 0 ? "comms_logger: no communicator call was logged" : "comms_logger summary (rank 0's calls):\n" + comms.Summary());
    }
}
