// The generated client names a few types of Polly (a NuGet package for retry policies, not packaged for
// Debian) only to run a retry policy that is left unset by default: these stand-ins let Mono compile it
// without Polly. A real .NET project takes Polly from NuGet instead.
using System;
using System.Threading.Tasks;

namespace Polly
{
    public enum OutcomeType
    {
        Successful,
        Failure,
    }

    public sealed class PolicyResult<T>
    {
        public OutcomeType Outcome { get; set; }
        public T Result { get; set; }
        public Exception FinalException { get; set; }
    }

    public interface ISyncPolicy<T>
    {
    }

    public interface IAsyncPolicy<T>
    {
        Task<PolicyResult<T>> ExecuteAndCaptureAsync(Func<Task<T>> action);
    }
}
