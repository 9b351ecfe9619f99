using System;
using System.IO;
using System.Text;

namespace Shardwise.Distributed.MpiProbe;

/// <summary>
/// Writes each line with a single write() call. mpirun merges all ranks' output as it reads it; Console's writers
/// split a long line into several writes, which let another rank's text land in the middle of it.
/// </summary>
internal static class Report
{
    private static readonly Stream Out = Console.OpenStandardOutput();
    private static readonly Stream Error = Console.OpenStandardError();

    public static void Line(string text) => Write(Out, text);

    public static void ErrorLine(string text) => Write(Error, text);

    private static void Write(Stream stream, string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text + "\n");
        stream.Write(bytes);
        stream.Flush();
    }
}
