using System;
using System.Text;

namespace Shardwise.Distributed.Native;

/// <summary>
/// The one place a nonzero MPI return code becomes an exception. The communicator sets MPI_ERRORS_RETURN, so MPI
/// reports failures (a peer's connection lost, a truncated message) as codes instead of aborting the job.
/// </summary>
internal static class MpiErrors
{
    /// <summary>Throws when <paramref name="code"/> is not MPI_SUCCESS: a <see cref="CommunicationException"/> when
    /// the call belongs to a collective or transfer, an <see cref="MpiException"/> otherwise (setup calls).</summary>
    public static void Check(int code, string call, Collective? during = null)
    {
        if (code == Mpi.Success) return;
        string message = $"{call} failed: {Describe(code)} (MPI error code {code})";
        if (during is { } collective)
            throw new CommunicationException(collective, null, $"{collective} failed: {message}");
        throw new MpiException(call, code, message);
    }

    public static unsafe string Describe(int code)
    {
        byte* text = stackalloc byte[Mpi.MaxErrorString + 1];
        int length = 0;
        if (Mpi.ErrorString(code, text, &length) != Mpi.Success || length <= 0) return "unknown MPI error";
        return Encoding.ASCII.GetString(text, Math.Min(length, Mpi.MaxErrorString));
    }
}
