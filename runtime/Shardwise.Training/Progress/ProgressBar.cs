using System;
using System.Globalization;
using System.Text;

namespace Shardwise.Training.Progress;

/// <summary>
/// The text of the live progress line drawn between reports, e.g.
/// <c>[###########-------------------]  36.5% 730/2000 | loss 2.4312 | eta 05:42</c>. ASCII only, so it renders the
/// same in any terminal font or encoding.
/// </summary>
internal static class ProgressBar
{
    public const int Width = 30;

    public static string Format(long step, long totalSteps, double loss, TimeSpan? eta)
    {
        double fraction = totalSteps <= 0 ? 1 : Math.Clamp((double)step / totalSteps, 0, 1);
        int filled = (int)Math.Floor(fraction * Width);
        var text = new StringBuilder(96);
        text.Append('[').Append('#', filled).Append('-', Width - filled).Append(']');
        text.Append(CultureInfo.InvariantCulture, $" {fraction * 100,5:0.0}% {step}/{totalSteps} | loss {loss:0.0000} | eta ");
        text.Append(EtaEstimator.Format(eta));
        return text.ToString();
    }
}
