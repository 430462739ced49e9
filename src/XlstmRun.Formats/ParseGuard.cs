namespace XlstmRun.Formats;

/// <summary>
/// The last line of defence of every parser entry point: an exception that is not a <see cref="BadInputException"/>
/// escaping a parser means a check is missing; the user still gets one line in our words and exit code 2 (the original
/// exception is kept as the inner exception, which the fuzz harness reports as a finding to fix).
/// </summary>
public static class ParseGuard
{
    public static T Run<T>(string name, string what, Func<T> parse)
    {
        try
        {
            return parse();
        }
        catch (Exception e) when (e is not BadInputException and not OutOfMemoryException and not OperationCanceledException)
        {
            throw new BadInputException($"{name}: not a valid {what} (inconsistent content)", e);
        }
    }

    /// <summary>Whether <paramref name="e"/> came from <see cref="Run{T}"/> catching an unexpected exception.</summary>
    public static bool IsUnexpected(BadInputException e) => e.InnerException is not null and not BadInputException and not IOException;
}
