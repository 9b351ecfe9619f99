using System;

namespace Shardwise.Distributed;

/// <summary>An MPI call outside any collective (initialisation, communicator setup) returned an error code.</summary>
public sealed class MpiException(string call, int errorCode, string message) : Exception(message)
{
    /// <summary>The MPI function that failed, e.g. "MPI_Init_thread".</summary>
    public string Call { get; } = call;

    public int ErrorCode { get; } = errorCode;
}
