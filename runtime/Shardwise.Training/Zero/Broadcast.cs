using System;
using Shardwise.Distributed;

namespace Shardwise.Training.Zero;

/// <summary>Small values rank 0 decides and every rank needs (the directory of a checkpoint being written).</summary>
public static class Broadcast
{
    private const int MaxChars = 4096;

    /// <summary>Rank 0's text on every rank, carried as float-coded UTF-16 units (exact below 2^24).</summary>
    public static string Text(ICommunicator communicator, string? text)
    {
        if (communicator.Size == 1) return text ?? throw new ArgumentNullException(nameof(text));
        var buffer = new float[MaxChars + 1];
        if (communicator.Rank == 0)
        {
            if (text is null || text.Length > MaxChars) throw new ArgumentException($"rank 0 must broadcast at most {MaxChars} characters");
            buffer[0] = text.Length;
            for (int i = 0; i < text.Length; i++) buffer[i + 1] = text[i];
        }
        communicator.Broadcast(buffer, root: 0);
        var chars = new char[(int)buffer[0]];
        for (int i = 0; i < chars.Length; i++) chars[i] = (char)(int)buffer[i + 1];
        return new string(chars);
    }
}
