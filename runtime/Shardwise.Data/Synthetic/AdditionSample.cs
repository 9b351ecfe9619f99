namespace Shardwise.Data;

/// <summary>One addition problem; <see cref="AdditionTask.Format"/> turns it into text.</summary>
public readonly record struct AdditionSample(long Left, long Right)
{
    public long Sum => Left + Right;
}
