// A small client for a lanai box: classify an image (multipart or raw bytes), run an Open Inference
// Protocol infer with JSON tensors, with an API key, a client certificate, the box's own CA or a pinned
// fingerprint, and retries on 503/429 that wait for the server's Retry-After.
// Only System.Net.Http: it builds with the .NET 8 SDK (dotnet build) and with Mono's mcs.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Net;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace Lanai.Sample
{
    /// <summary>An answer from the server that was not a success: its status and its message.</summary>
    public class LanaiException : Exception
    {
        public int Status { get; private set; }
        public string Kind { get; private set; }

        public LanaiException(int status, string message, string kind) : base(message)
        {
            Status = status;
            Kind = kind;
        }
    }

    public class LanaiOptions
    {
        /// <summary>Sent as "Authorization: Bearer KEY" (lanai keys create NAME --role infer).</summary>
        public string ApiKey;
        /// <summary>A client certificate for an --mtls box: the .p12 from "lanai certs client NAME".</summary>
        public string PfxPath;
        public string PfxPassword;
        /// <summary>The box's CA (&lt;store&gt;/tls/ca.pem): the server's certificate must chain to it.</summary>
        public string CaPemPath;
        /// <summary>Or: the SHA-256 fingerprint of the server's certificate (what "lanai certs init" prints).</summary>
        public string PinSha256;
        /// <summary>How many times to retry a 503 or 429; each retry waits for the server's Retry-After.</summary>
        public int Retries = 4;
        /// <summary>The longest wait between two tries, whatever Retry-After asks.</summary>
        public TimeSpan MaxWait = TimeSpan.FromSeconds(30);
        public TimeSpan Timeout = TimeSpan.FromSeconds(60);
        /// <summary>Told of each retry (status and wait); null: silent.</summary>
        public Action<int, TimeSpan> OnRetry;
    }

    public sealed class LanaiClient : IDisposable
    {
        private const string EcPublicKeyOid = "1.2.840.10045.2.1";
        private static readonly bool IsMono = Type.GetType("Mono.Runtime") != null;

        private readonly HttpClient _http;
        private readonly LanaiOptions _options;
        private readonly X509Certificate2 _ca;
        private readonly X509Certificate2 _clientCertificate;

        public LanaiClient(string baseUrl, LanaiOptions options)
        {
            _options = options ?? new LanaiOptions();
            var handler = new HttpClientHandler();
            if (!string.IsNullOrEmpty(_options.PfxPath))
            {
                // UserKeySet: the key goes to the user's store, not the machine's (which needs admin on Windows).
                try
                {
                    _clientCertificate = new X509Certificate2(File.ReadAllBytes(_options.PfxPath), _options.PfxPassword,
                                                              X509KeyStorageFlags.UserKeySet);
                }
                catch (CryptographicException e)
                {
                    throw new CryptographicException(
                        "cannot open " + _options.PfxPath + ": a wrong --pfx-password, or not a PKCS#12 file (" + e.Message + ")", e);
                }
                if (!_clientCertificate.HasPrivateKey)
                    throw new ArgumentException(_options.PfxPath + " has no private key");
                if (IsMono && _clientCertificate.GetKeyAlgorithm() == EcPublicKeyOid)
                    throw new NotSupportedException(
                        "Mono cannot use an ECDSA client certificate (it has no ECDSA), and lanai's are ECDSA P-256: " +
                        "run this with .NET 8 (dotnet build), which can");
                handler.ClientCertificateOptions = ClientCertificateOption.Manual;
                handler.ClientCertificates.Add(_clientCertificate);
            }
            if (!string.IsNullOrEmpty(_options.CaPemPath))
            {
                _ca = ReadPem(_options.CaPemPath);
            }
            if (_ca != null || !string.IsNullOrEmpty(_options.PinSha256))
            {
                handler.ServerCertificateCustomValidationCallback = CheckServer;
            }
            _http = new HttpClient(handler) { BaseAddress = new Uri(baseUrl.TrimEnd('/') + "/"), Timeout = _options.Timeout };
            if (!string.IsNullOrEmpty(_options.ApiKey))
            {
                _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", _options.ApiKey);
            }
        }

        public void Dispose()
        {
            _http.Dispose();
        }

        // -- calls --------------------------------------------------------------------------------

        /// <summary>GET /v2/health/ready: true when the server is ready.</summary>
        public async Task<bool> ReadyAsync()
        {
            using (var response = await _http.GetAsync("v2/health/ready").ConfigureAwait(false))
            {
                return response.StatusCode == HttpStatusCode.OK;
            }
        }

        /// <summary>POST /v1/models/{model}/classify with the image as form field "file" (model null: /predict).</summary>
        public Task<object> ClassifyFileAsync(string path, string model, int topK)
        {
            byte[] image = File.ReadAllBytes(path);
            string name = Path.GetFileName(path);
            return SendAsync(HttpMethod.Post, ClassifyPath(model, topK), () =>
            {
                var form = new MultipartFormDataContent();
                var file = new ByteArrayContent(image);
                file.Headers.ContentType = new MediaTypeHeaderValue(ImageType(path));
                form.Add(file, "file", name);
                return form;
            });
        }

        /// <summary>The same, with the image as the whole body (Content-Type: image/jpeg or image/png).</summary>
        public Task<object> ClassifyBytesAsync(byte[] image, string contentType, string model, int topK)
        {
            return SendAsync(HttpMethod.Post, ClassifyPath(model, topK), () =>
            {
                var body = new ByteArrayContent(image);
                body.Headers.ContentType = new MediaTypeHeaderValue(contentType);
                return body;
            });
        }

        /// <summary>GET /v2/models/{model}: name, platform, inputs and outputs (name, datatype, shape).</summary>
        public Task<object> ModelMetadataAsync(string model)
        {
            return SendAsync(HttpMethod.Get, "v2/models/" + Uri.EscapeDataString(model), null);
        }

        /// <summary>POST /v2/models/{model}/infer with one FP32 input as a JSON tensor (row-major, shape with the batch).</summary>
        public Task<object> InferAsync(string model, string input, int[] shape, float[] data)
        {
            var sb = new StringBuilder();
            sb.Append("{\"inputs\":[{\"name\":").Append(Json.Quote(input)).Append(",\"shape\":[");
            for (int i = 0; i < shape.Length; i++)
                sb.Append(i > 0 ? "," : "").Append(shape[i].ToString(CultureInfo.InvariantCulture));
            sb.Append("],\"datatype\":\"FP32\",\"data\":[");
            for (int i = 0; i < data.Length; i++)
                sb.Append(i > 0 ? "," : "").Append(Json.Number(data[i]));
            sb.Append("]}]}");
            string body = sb.ToString();
            return SendAsync(HttpMethod.Post, "v2/models/" + Uri.EscapeDataString(model) + "/infer",
                             () => new StringContent(body, Encoding.UTF8, "application/json"));
        }

        // -- the plumbing ---------------------------------------------------------------------------

        /// <summary>Send, retrying 503 and 429 after the server's Retry-After; the JSON answer, or a
        /// LanaiException with the server's message. The content is made afresh for each try.</summary>
        private async Task<object> SendAsync(HttpMethod method, string path, Func<HttpContent> content)
        {
            for (int attempt = 0; ; attempt++)
            {
                using (var request = new HttpRequestMessage(method, path))
                {
                    if (content != null) request.Content = content();
                    using (var response = await _http.SendAsync(request).ConfigureAwait(false))
                    {
                        string text = await response.Content.ReadAsStringAsync().ConfigureAwait(false);
                        int status = (int)response.StatusCode;
                        if (response.IsSuccessStatusCode)
                            return Json.Parse(text);
                        if ((status == 503 || status == 429) && attempt < _options.Retries)
                        {
                            TimeSpan wait = RetryAfter(response, attempt);
                            if (_options.OnRetry != null) _options.OnRetry(status, wait);
                            await Task.Delay(wait).ConfigureAwait(false);
                            continue;
                        }
                        throw Failure(status, response.ReasonPhrase, text);
                    }
                }
            }
        }

        private TimeSpan RetryAfter(HttpResponseMessage response, int attempt)
        {
            RetryConditionHeaderValue header = response.Headers.RetryAfter;
            TimeSpan wait = TimeSpan.FromSeconds(Math.Min(8, 0.25 * (1 << attempt))); // no header: back off
            if (header != null && header.Delta.HasValue)
                wait = header.Delta.Value;
            else if (header != null && header.Date.HasValue)
                wait = header.Date.Value - DateTimeOffset.UtcNow;
            if (wait < TimeSpan.Zero) wait = TimeSpan.Zero;
            return wait > _options.MaxWait ? _options.MaxWait : wait;
        }

        private static LanaiException Failure(int status, string reason, string text)
        {
            // lanai's errors are {"error": "what was wrong. Hint: what to do", "kind": "..."}
            string message = null, kind = null;
            try
            {
                object body = Json.Parse(text);
                message = Json.Get(body, "error") as string;
                kind = Json.Get(body, "kind") as string;
            }
            catch (FormatException)
            {
            }
            if (message == null) message = string.IsNullOrEmpty(text) ? reason : text.Trim();
            return new LanaiException(status, message, kind);
        }

        private static string ClassifyPath(string model, int topK)
        {
            string path = string.IsNullOrEmpty(model) ? "predict" : "v1/models/" + Uri.EscapeDataString(model) + "/classify";
            return topK > 0 ? path + "?top_k=" + topK.ToString(CultureInfo.InvariantCulture) : path;
        }

        public static string ImageType(string path)
        {
            string ext = Path.GetExtension(path).ToLowerInvariant();
            if (ext == ".png") return "image/png";
            if (ext == ".webp") return "image/webp";
            if (ext == ".bmp") return "image/bmp";
            return "image/jpeg";
        }

        // -- trusting the box -----------------------------------------------------------------------

        /// <summary>Accept the server's certificate if it has the pinned fingerprint, or if it is for this
        /// host name and chains to the box's CA (or to a root the system already trusts).</summary>
        private bool CheckServer(HttpRequestMessage request, X509Certificate2 server, X509Chain systemChain, SslPolicyErrors errors)
        {
            if (server == null) return false;
            if (!string.IsNullOrEmpty(_options.PinSha256))
                return Fingerprint(server) == NormalizeFingerprint(_options.PinSha256);
            if ((errors & (SslPolicyErrors.RemoteCertificateNotAvailable | SslPolicyErrors.RemoteCertificateNameMismatch)) != 0)
                return false;
            if (errors == SslPolicyErrors.None)
                return true;
            return ChainsTo(server, _ca);
        }

        /// <summary>Whether <paramref name="server"/> is valid now and signed by <paramref name="ca"/>.</summary>
        public static bool ChainsTo(X509Certificate2 server, X509Certificate2 ca)
        {
            if (IsMono && (server.GetKeyAlgorithm() == EcPublicKeyOid || ca.GetKeyAlgorithm() == EcPublicKeyOid))
                throw new NotSupportedException(
                    "Mono cannot check an ECDSA certificate chain against --ca (it has no ECDSA): " +
                    "pin the server's fingerprint with --pin, or run this with .NET 8");
            using (var chain = new X509Chain())
            {
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck; // the box's CA publishes no CRL
                chain.ChainPolicy.VerificationFlags = X509VerificationFlags.AllowUnknownCertificateAuthority;
                chain.ChainPolicy.ExtraStore.Add(ca);
                if (!chain.Build(server)) return false;
                X509Certificate2 root = chain.ChainElements[chain.ChainElements.Count - 1].Certificate;
                return chain.ChainElements.Count >= 2 && SameBytes(root.RawData, ca.RawData);
            }
        }

        /// <summary>SHA-256 of the certificate as "AB:CD:…", as lanai certs and Windows show it.</summary>
        public static string Fingerprint(X509Certificate2 cert)
        {
            using (var sha = SHA256.Create())
            {
                return BitConverter.ToString(sha.ComputeHash(cert.RawData)).Replace('-', ':');
            }
        }

        private static string NormalizeFingerprint(string text)
        {
            var hex = new StringBuilder();
            foreach (char c in text.ToUpperInvariant())
                if (Uri.IsHexDigit(c)) hex.Append(c);
            var pairs = new List<string>();
            for (int i = 0; i + 1 < hex.Length; i += 2) pairs.Add(hex.ToString(i, 2));
            return string.Join(":", pairs.ToArray());
        }

        private static bool SameBytes(byte[] a, byte[] b)
        {
            if (a.Length != b.Length) return false;
            for (int i = 0; i < a.Length; i++) if (a[i] != b[i]) return false;
            return true;
        }

        /// <summary>The first certificate of a PEM file (ca.pem), read by hand so that it works everywhere.</summary>
        public static X509Certificate2 ReadPem(string path)
        {
            const string begin = "-----BEGIN CERTIFICATE-----", end = "-----END CERTIFICATE-----";
            string text = File.ReadAllText(path);
            int start = text.IndexOf(begin, StringComparison.Ordinal);
            int stop = start < 0 ? -1 : text.IndexOf(end, start, StringComparison.Ordinal);
            if (stop < 0) throw new ArgumentException(path + " holds no PEM certificate");
            string base64 = text.Substring(start + begin.Length, stop - start - begin.Length);
            return new X509Certificate2(Convert.FromBase64String(base64.Replace("\r", "").Replace("\n", "").Trim()));
        }
    }
}
