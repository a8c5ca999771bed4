// Lanai.Sample: classify an image on a lanai box, and optionally run an Open Inference Protocol infer.
//
//   Lanai.Sample BASE_URL IMAGE [--model M] [--raw] [--top-k N] [--key K]
//                [--pfx FILE --pfx-password P] [--ca ca.pem | --pin SHA256] [--infer-model M] [--retries N]
//
// Prints the label and score; with --infer-model, the outputs of an infer on a small tensor. Exits 0 on
// success, 1 when the server refused (its message on stderr), 2 on bad arguments, 3 when it could not connect.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Net.Http;
using System.Security.Cryptography;

namespace Lanai.Sample
{
    public static class Program
    {
        private const string Usage =
            "usage: Lanai.Sample BASE_URL [IMAGE] [--model M] [--raw] [--top-k N] [--key K]\n" +
            "                    [--pfx FILE --pfx-password P] [--ca ca.pem | --pin SHA256]\n" +
            "                    [--infer-model M] [--retries N]";

        public static int Main(string[] args)
        {
            var positional = new List<string>();
            var flags = new Dictionary<string, string>();
            bool raw = false;
            for (int i = 0; i < args.Length; i++)
            {
                string arg = args[i];
                if (arg == "--raw") { raw = true; continue; }
                if (arg == "-h" || arg == "--help") { Console.WriteLine(Usage); return 0; }
                if (arg.StartsWith("--", StringComparison.Ordinal))
                {
                    if (i + 1 >= args.Length) return Bad(arg + " needs a value");
                    flags[arg.Substring(2)] = args[++i];
                    continue;
                }
                positional.Add(arg);
            }
            var known = new HashSet<string> { "model", "top-k", "key", "pfx", "pfx-password", "ca", "pin", "infer-model", "retries" };
            foreach (string name in flags.Keys)
                if (!known.Contains(name)) return Bad("unknown option --" + name);
            string inferModel = Flag(flags, "infer-model");
            if (positional.Count < 1 || positional.Count > 2 || (positional.Count == 1 && inferModel == null))
                return Bad("give BASE_URL and IMAGE (IMAGE may be left out with --infer-model)");

            var options = new LanaiOptions
            {
                ApiKey = Flag(flags, "key") ?? Environment.GetEnvironmentVariable("LANAI_API_KEY"),
                PfxPath = Flag(flags, "pfx"),
                PfxPassword = Flag(flags, "pfx-password"),
                CaPemPath = Flag(flags, "ca"),
                PinSha256 = Flag(flags, "pin"),
                OnRetry = (status, wait) => Console.Error.WriteLine(
                    "lanai: HTTP {0}, retrying in {1:0.##} s", status, wait.TotalSeconds),
            };
            int topK = 0, retries;
            if (flags.ContainsKey("top-k") && !int.TryParse(flags["top-k"], out topK)) return Bad("--top-k needs a number");
            if (flags.ContainsKey("retries"))
            {
                if (!int.TryParse(flags["retries"], out retries) || retries < 0) return Bad("--retries needs a number");
                options.Retries = retries;
            }

            try
            {
                using (var client = new LanaiClient(positional[0], options))
                {
                    if (positional.Count == 2)
                    {
                        string image = positional[1];
                        object answer = raw
                            ? client.ClassifyBytesAsync(File.ReadAllBytes(image), LanaiClient.ImageType(image),
                                                        Flag(flags, "model"), topK).GetAwaiter().GetResult()
                            : client.ClassifyFileAsync(image, Flag(flags, "model"), topK).GetAwaiter().GetResult();
                        PrintClassification(answer);
                    }
                    if (inferModel != null)
                        RunInfer(client, inferModel);
                }
                return 0;
            }
            catch (LanaiException e)
            {
                Console.Error.WriteLine("lanai: HTTP {0}{1}: {2}", e.Status, e.Kind == null ? "" : " " + e.Kind, e.Message);
                return 1;
            }
            catch (HttpRequestException e)
            {
                Console.Error.WriteLine("lanai: could not reach the server: {0}", Describe(e));
                return 3;
            }
            catch (System.Threading.Tasks.TaskCanceledException)
            {
                Console.Error.WriteLine("lanai: the server did not answer in time");
                return 3;
            }
            catch (Exception e) when (e is IOException || e is CryptographicException || e is ArgumentException || e is NotSupportedException || e is FormatException)
            {
                Console.Error.WriteLine("lanai: {0}", Describe(e));
                return 2;
            }
        }

        private static void PrintClassification(object answer)
        {
            object score = Json.Get(answer, "score");
            Console.WriteLine("label: {0}", Json.Get(answer, "label"));
            Console.WriteLine("score: {0}", score is double ? ((double)score).ToString("0.0000", CultureInfo.InvariantCulture) : "?");
            var predictions = Json.Get(answer, "predictions") as List<object>;
            if (predictions != null && predictions.Count > 1)
            {
                foreach (object p in predictions)
                {
                    Console.WriteLine("  {0,8:0.0000}  {1}", Json.Get(p, "score"), Json.Get(p, "label"));
                }
            }
        }

        /// <summary>Read the model's first input from its metadata, send a tensor of that shape (variable
        /// dimensions as 1) filled with a ramp in [0, 1), and print each output.</summary>
        private static void RunInfer(LanaiClient client, string model)
        {
            object metadata = client.ModelMetadataAsync(model).GetAwaiter().GetResult();
            var inputs = Json.Get(metadata, "inputs") as List<object>;
            if (inputs == null || inputs.Count == 0) throw new FormatException("model " + model + " lists no inputs");
            object input = inputs[0];
            string name = (string)Json.Get(input, "name");
            var dims = (List<object>)Json.Get(input, "shape");
            var shape = new int[dims.Count];
            int count = 1;
            for (int i = 0; i < shape.Length; i++)
            {
                shape[i] = Math.Max(1, (int)(double)dims[i]);
                count *= shape[i];
            }
            var data = new float[count];
            for (int i = 0; i < count; i++) data[i] = (i % 256) / 256f;

            object answer = client.InferAsync(model, name, shape, data).GetAwaiter().GetResult();
            Console.WriteLine("infer {0} input {1} [{2}] FP32:", model, name, string.Join(",", Array.ConvertAll(shape, d => d.ToString(CultureInfo.InvariantCulture))));
            foreach (object output in (List<object>)Json.Get(answer, "outputs"))
            {
                var outShape = (List<object>)Json.Get(output, "shape");
                var values = Json.Get(output, "data") as List<object> ?? new List<object>();
                var shown = new List<string>();
                for (int i = 0; i < values.Count && i < 8; i++)
                    shown.Add(values[i] is double ? ((double)values[i]).ToString("0.####", CultureInfo.InvariantCulture) : Convert.ToString(values[i], CultureInfo.InvariantCulture));
                Console.WriteLine("output {0} [{1}] {2}: {3}{4}", Json.Get(output, "name"),
                                  string.Join(",", outShape.ConvertAll(d => Convert.ToString(d, CultureInfo.InvariantCulture)).ToArray()),
                                  Json.Get(output, "datatype"), string.Join(" ", shown.ToArray()), values.Count > 8 ? " …" : "");
            }
        }

        private static string Flag(Dictionary<string, string> flags, string name)
        {
            string value;
            return flags.TryGetValue(name, out value) ? value : null;
        }

        private static int Bad(string message)
        {
            Console.Error.WriteLine("lanai: " + message);
            Console.Error.WriteLine(Usage);
            return 2;
        }

        /// <summary>The message of an exception and of what caused it (TLS failures hide in the inner ones).</summary>
        private static string Describe(Exception e)
        {
            var parts = new List<string>();
            for (Exception x = e; x != null; x = x.InnerException)
                if (!parts.Contains(x.Message)) parts.Add(x.Message);
            return string.Join(": ", parts.ToArray());
        }
    }
}
