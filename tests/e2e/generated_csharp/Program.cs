// Drives the C# client that openapi-generator makes from lanai's /openapi.json (see
// tests/e2e/test_csharp_generated_client.py): health, a classify, an Open Inference Protocol infer and
// a refusal, each through the generated API classes and models only.
//
//   mono Program.exe BASE_URL IMAGE [KEY]
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Lanai.Client.Api;
using Lanai.Client.Client;
using Lanai.Client.Model;

static class Program
{
    static int Main(string[] args)
    {
        var config = new Configuration { BasePath = args[0] };
        if (args.Length > 2)
        {
            config.AccessToken = args[2];  // the bearer scheme: Authorization: Bearer KEY
        }
        try
        {
            Run(config, args[1]);
            return 0;
        }
        catch (ApiException e)
        {
            Console.Error.WriteLine("HTTP " + e.ErrorCode + ": " + e.ErrorContent);
            return 1;
        }
    }

    static void Run(Configuration config, string image)
    {
        var health = new HealthApi(config);
        Console.WriteLine("live: " + health.ServerLive().Live);
        Console.WriteLine("ready: " + health.ServerReady().Ready);
        HealthAnswer answer = health.Health();
        if (answer.ActualInstance is HealthReport)
        {
            var report = answer.GetHealthReport();
            Console.WriteLine("health: " + report.Status + ", models " + string.Join(" ", report.Models.Select(m => m.Name)));
        }
        else
        {
            Console.WriteLine("health: " + answer.GetHealthStatus().Status);
        }

        var tasks = new TasksApi(config);
        using (var stream = File.OpenRead(image))
        {
            Classification result = tasks.Classify("efficientnet-lite0", new FileParameter("cat.jpg", "image/jpeg", stream), 3);
            Console.WriteLine("model: " + result.Model + " " + result.VarVersion);
            foreach (Prediction p in result.Predictions)
            {
                Console.WriteLine("label: " + p.Label + " score: " + p.Score.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        var inference = new InferenceApi(config);
        ModelMetadata metadata = inference.ModelMetadata("tiny");
        TensorSpec input = metadata.Inputs[0];
        var pixels = Enumerable.Repeat((object)0.5, 3 * 8 * 8).ToList();
        var request = new InferRequest(id: "csharp-1", inputs: new List<RequestInput>
        {
            new RequestInput(name: input.Name, shape: new List<long> { 1, 3, 8, 8 }, datatype: Datatype.FP32, data: pixels),
        });
        InferResponse response = inference.ModelInfer("tiny", request);
        foreach (ResponseOutput output in response.Outputs)
        {
            Console.WriteLine("infer " + response.ModelName + " id " + response.Id + " output " + output.Name + " ["
                + string.Join(",", output.Shape) + "] " + output.Datatype + ": "
                + string.Join(" ", output.Data.Select(v => Convert.ToDouble(v).ToString("R", System.Globalization.CultureInfo.InvariantCulture))));
        }

        try
        {
            inference.ModelReady("no-such-model");
            Console.WriteLine("refused: no");
        }
        catch (ApiException e)
        {
            Console.WriteLine("refused: " + e.ErrorCode + " " + e.ErrorContent);
        }
    }
}
