using System;
using System.Globalization;
using System.IO;
using System.Threading.Tasks;
using Microsoft.Win32.SafeHandles;

namespace Shardwise.Training.Offload;

/// <summary>
/// A scratch file of a fixed size under a swap directory, read and written at offsets. Its whole size is reserved when
/// it is created, so a full disk is reported before training starts rather than in the middle of a step. On Unix its
/// name is removed from the directory as soon as it is open: the file lives while the handle does, and a killed process
/// leaves nothing behind on the disk. (Windows deletes it on close instead.)
/// </summary>
internal sealed class SwapFile : IDisposable
{
    private readonly SafeFileHandle _handle;

    private SwapFile(SafeFileHandle handle, string path, long bytes)
    {
        _handle = handle;
        Path = path;
        Bytes = bytes;
    }

    /// <summary>Where the file was created (on Unix no longer listed in its directory).</summary>
    public string Path { get; }

    public long Bytes { get; }

    /// <param name="configPath">The JSON path of the setting that named <paramref name="directory"/>, for messages.</param>
    public static SwapFile Create(string directory, string namePrefix, long bytes, string configPath)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (!Directory.Exists(directory))
            throw new OffloadException($"{configPath}: \"{directory}\" is not an existing directory; create it (on the NVMe drive) or point {configPath} at one");

        long free = FreeBytes(directory);
        if (free >= 0 && free < bytes)
            throw new OffloadException(string.Create(CultureInfo.InvariantCulture,
                $"{configPath}: \"{directory}\" has {Engine.MemoryReport.Format(free)} free, and this rank's swap file needs {Engine.MemoryReport.Format(bytes)} ({bytes:N0} bytes)"));

        string path = System.IO.Path.Combine(directory, string.Create(CultureInfo.InvariantCulture,
            $"{namePrefix}-pid{Environment.ProcessId}-{Guid.NewGuid():N}.swap"));
        var options = FileOptions.Asynchronous | (OperatingSystem.IsWindows() ? FileOptions.DeleteOnClose : FileOptions.None);
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, options, preallocationSize: bytes);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            throw new OffloadException(string.Create(CultureInfo.InvariantCulture,
                $"{configPath}: cannot create a {Engine.MemoryReport.Format(bytes)} swap file in \"{directory}\": {error.Message}"), error);
        }

        if (!OperatingSystem.IsWindows())
        {
            try
            {
                File.Delete(path);
            }
            catch (Exception error) when (error is IOException or UnauthorizedAccessException)
            {
                handle.Dispose();
                throw new OffloadException($"{configPath}: cannot unlink the swap file \"{path}\" after creating it: {error.Message}", error);
            }
        }

        return new SwapFile(handle, path, bytes);
    }

    /// <summary>Free bytes on the file system holding <paramref name="directory"/>; −1 when the system cannot say.</summary>
    public static long FreeBytes(string directory)
    {
        try
        {
            return new DriveInfo(System.IO.Path.GetFullPath(directory)).AvailableFreeSpace;
        }
        catch (Exception error) when (error is IOException or ArgumentException or UnauthorizedAccessException)
        {
            return -1;
        }
    }

    public void Read(Span<byte> destination, long offset)
    {
        while (!destination.IsEmpty)
        {
            int read = RandomAccess.Read(_handle, destination, offset);
            if (read <= 0) throw new IOException(string.Create(CultureInfo.InvariantCulture, $"swap file \"{Path}\" ended at byte {offset} of {Bytes}"));
            destination = destination[read..];
            offset += read;
        }
    }

    public async Task ReadAsync(Memory<byte> destination, long offset)
    {
        while (!destination.IsEmpty)
        {
            int read = await RandomAccess.ReadAsync(_handle, destination, offset).ConfigureAwait(false);
            if (read <= 0) throw new IOException(string.Create(CultureInfo.InvariantCulture, $"swap file \"{Path}\" ended at byte {offset} of {Bytes}"));
            destination = destination[read..];
            offset += read;
        }
    }

    public void Write(ReadOnlySpan<byte> source, long offset) => RandomAccess.Write(_handle, source, offset);

    public Task WriteAsync(ReadOnlyMemory<byte> source, long offset) => RandomAccess.WriteAsync(_handle, source, offset).AsTask();

    public void Dispose() => _handle.Dispose();
}
