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
}
