namespace XlstmRun.Formats;

/// <summary>
/// Raised for problems with user-supplied input (files, ids, options). The CLI prints the message as one line and exits 2.
/// Messages name the problem and the file; they never contain a stack trace.
/// </summary>
public class BadInputException : Exception
{
    public BadInputException(string message) : base(message) { }
    public BadInputException(string message, Exception inner) : base(message, inner) { }
}
