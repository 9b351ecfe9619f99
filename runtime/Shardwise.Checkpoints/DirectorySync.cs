using System;
using System.IO;
using System.Runtime.InteropServices;

namespace Shardwise.Checkpoints;

/// <summary>
/// fsync of a directory, which makes renames and new entries in it durable. .NET cannot open a directory as a
/// file handle (File.OpenHandle throws UnauthorizedAccessException), so on Linux and macOS we call libc's
/// open/fsync/close directly. Windows has no equivalent for directories (NTFS journals its metadata), so the
/// call is a no-op there, as it is where libc cannot be loaded.
/// </summary>
internal static partial class DirectorySync
{
    private const int ORdOnly = 0;

    // EINVAL/ENOTSUP/EROFS: the filesystem cannot sync directories (some FUSE/network mounts); nothing to do.
    private const int EInval = 22;
    private const int ERofs = 30;
    private const int EOpNotSuppLinux = 95;
    private const int EOpNotSuppMac = 102;

    private static bool s_libcMissing;

    public static void Flush(string directory)
    {
        if (s_libcMissing || !(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD()))
        {
            return;
        }

        int fd;
        try
        {
            fd = Open(directory, ORdOnly);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            s_libcMissing = true;
            return;
        }

        if (fd < 0)
        {
            var openError = Marshal.GetLastPInvokeError();
            throw new IOException($"cannot open directory '{directory}' to fsync it (errno {openError}: {Marshal.GetPInvokeErrorMessage(openError)})");
        }

        try
        {
            if (FSync(fd) != 0)
            {
                var error = Marshal.GetLastPInvokeError();
                if (error is not (EInval or ERofs or EOpNotSuppLinux or EOpNotSuppMac))
                {
                    throw new IOException($"fsync of directory '{directory}' failed (errno {error}: {Marshal.GetPInvokeErrorMessage(error)})");
                }
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int FSync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
