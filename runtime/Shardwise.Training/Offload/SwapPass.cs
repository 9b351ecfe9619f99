using System;

namespace Shardwise.Training.Offload;

/// <summary>
/// One pass over <see cref="SwappedOptimizerState"/>'s chunks in order. Each <see cref="Next"/> hands the caller the next
/// chunk's masters and moments as spans over a host buffer; in <see cref="SwapPassMode.Update"/> and
/// <see cref="SwapPassMode.Overwrite"/> the chunk is written back when the caller asks for the following one (or when the
/// pass ends). Dispose waits for every read and write the pass started.
/// </summary>
public sealed class SwapPass : IDisposable
{
    private readonly SwappedOptimizerState _state;
    private readonly SwapPassMode _mode;
    private int _chunk = -1;
    private bool _aheadStarted; // a read-ahead of _chunk + 1 is running

    internal SwapPass(SwappedOptimizerState state, SwapPassMode mode)
    {
        _state = state;
        _mode = mode;
    }

    /// <summary>
    /// Moves to the next chunk: <paramref name="start"/> is its first element in the partition, the spans its states
    /// (in <see cref="SwapPassMode.Overwrite"/> their contents are undefined until the caller fills them). False after the
    /// last chunk.
    /// </summary>
    public bool Next(out long start, out Span<float> master, out Span<float> expAvg, out Span<float> expAvgSq)
    {
        if (_chunk >= 0 && _chunk < _state.Chunks && _mode != SwapPassMode.Read) _state.WriteChunk(_chunk, inBackground: _state.PipelineWrite);
        if (_chunk < _state.Chunks) _chunk++;
        if (_chunk >= _state.Chunks)
        {
            _state.Drain();
            start = 0;
            master = expAvg = expAvgSq = default;
            return false;
        }

        if (_mode != SwapPassMode.Overwrite)
        {
            if (_aheadStarted) _state.WaitForBuffer(_chunk); // the read-ahead started at the previous chunk
            else
            {
                _state.WaitForBuffer(_chunk);                // a write-back still running from an earlier chunk
                _state.ReadChunk(_chunk);
            }
            _aheadStarted = false;
            if (_state.PipelineRead && _chunk + 1 < _state.Chunks)
            {
                _state.StartReadChunk(_chunk + 1);
                _aheadStarted = true;
            }
        }
        else
        {
            _state.WaitForBuffer(_chunk);
        }

        start = _state.ChunkStart(_chunk);
        _state.Spans(_chunk, out master, out expAvg, out expAvgSq);
        return true;
    }

    public void Dispose() => _state.Drain();
}
