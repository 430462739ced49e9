using System.Runtime.InteropServices;

namespace XlstmRun.Cli.Terminal;

/// <summary>
/// Ctrl-C (SIGINT) while work can be stopped: the first one cancels <see cref="Current"/> (the work ends after the
/// current token); another one before that work has ended, or one while nothing is cancellable, ends the process
/// (exit 130) after <see cref="BeforeExit"/>. Uses a POSIX signal registration rather than Console.CancelKeyPress,
/// which would put the terminal into keypad mode.
/// </summary>
internal sealed class CtrlC : IDisposable
{
    private readonly PosixSignalRegistration _reg;

    /// <summary>What a Ctrl-C cancels now; null: a Ctrl-C exits.</summary>
    public CancellationTokenSource? Current { get; set; }

    /// <summary>Runs before the process exits on Ctrl-C (e.g. restore the terminal).</summary>
    public Action? BeforeExit { get; set; }

    /// <summary>A Ctrl-C while nothing is cancellable is ignored rather than ending the process (the chat line
    /// editor reads Ctrl-C as a key; one typed in the moment between two lines must not kill the session).</summary>
    public bool IgnoreWhenIdle { get; init; }

    public CtrlC(CancellationTokenSource? current = null)
    {
        Current = current;
        _reg = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
    }

    private void OnSignal(PosixSignalContext ctx)
    {
        var c = Current;
        if (c == null && IgnoreWhenIdle)
        {
            ctx.Cancel = true;
            return;
        }
        if (c == null || c.IsCancellationRequested)
        {
            BeforeExit?.Invoke();
            return; // not cancelled: the runtime ends the process as SIGINT does (exit 130)
        }
        ctx.Cancel = true;
        c.Cancel();
    }

    public void Dispose() => _reg.Dispose();
}
