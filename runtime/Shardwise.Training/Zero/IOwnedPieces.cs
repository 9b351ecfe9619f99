using System;

namespace Shardwise.Training.Zero;

/// <summary>
/// Where ZeRO-3's gathers read this rank's pieces of the partitioned parameters from, when they are not one host array:
/// the NVMe swap of offload_param (Offload/SwappedParameterPieces). A returned span is valid until the next call.
/// </summary>
public interface IOwnedPieces
{
    /// <summary>This rank's piece of <paramref name="slot"/> (its owned length, unpadded).</summary>
    ReadOnlySpan<float> Piece(int slot);
}

/// <summary>The pieces in one host array laid out as <see cref="SlotSharding"/> owns them (ZeRO-3 without parameter swap).</summary>
public sealed class OwnedPieceArray(SlotSharding sharding, float[] owned) : IOwnedPieces
{
    public ReadOnlySpan<float> Piece(int slot) => sharding.OwnedPiece(owned, slot);
}
