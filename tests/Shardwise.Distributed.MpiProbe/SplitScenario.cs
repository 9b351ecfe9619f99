using System;

namespace Shardwise.Distributed.MpiProbe;

/// <summary>
/// Splits the world twice, the way a parallel topology does: into "rows" (rank / 2) and "columns" (rank mod 2, ranked in
/// reverse), then checks each child's rank, size, collectives, point-to-point and traffic counter, which is its own.
/// </summary>
internal static class SplitScenario
{
    public static void Run(ICommunicator comm)
    {
        int rank = comm.Rank, size = comm.Size;
        comm.Traffic.Reset();
        using ICommunicator row = comm.Split(rank / 2, rank);
        using ICommunicator column = comm.Split(rank % 2, -rank);

        int rowSize = Math.Min(2, size - rank / 2 * 2);
        Check.Equal(rowSize, row.Size, "row size");
        Check.Equal(rank % 2, row.Rank, "row rank");
        int columnSize = (size - rank % 2 + 1) / 2;
        Check.Equal(columnSize, column.Size, "column size");
        Check.Equal(columnSize - 1 - rank / 2, column.Rank, "column rank (reverse key order)");

        // The sum over the row is the sum of its world ranks + 1: each rank contributes its own.
        float[] data = [rank + 1];
        row.AllReduceSum(data);
        float expected = 0;
        for (int r = rank / 2 * 2; r < rank / 2 * 2 + rowSize; r++) expected += r + 1;
        Check.Equal<float>([expected], data, "row AllReduceSum");

        long parentBytes = comm.Traffic.TotalSent;
        float[] gathered = new float[column.Size];
        column.AllGather([rank], gathered);
        for (int c = 0; c < column.Size; c++)
            Check.Equal<float>([(column.Size - 1 - c) * 2 + rank % 2], gathered.AsSpan(c, 1), $"column AllGather[{c}]");
        Check.Equal(parentBytes, comm.Traffic.TotalSent, "the parent's traffic after calls on a child");
        if (column.Size > 1 && column.Traffic.Sent(Collective.AllGather) == 0)
            throw new InvalidOperationException("the child counted no AllGather traffic");

        if (row.Size == 2)
        {
            float[] message = [rank * 10];
            if (row.Rank == 0)
            {
                row.Send(message, 1, 7);
                row.Receive(message, 1, 8);
                Check.Equal<float>([(rank + 1) * 10], message, "row reply");
            }
            else
            {
                row.Receive(message, 0, 7);
                Check.Equal<float>([(rank - 1) * 10], message, "row message");
                row.Send([rank * 10], 0, 8);
            }
        }
    }
}
