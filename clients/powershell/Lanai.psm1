# Lanai.psm1: call a lanai box from PowerShell 7 (Invoke-RestMethod -Form needs 7.0 or later).
#
# UNTESTED: PowerShell is not in Debian's archive, so lanai's CI cannot run this module. It is kept
# small on purpose; clients/csharp is the Windows client that the tests run (with Mono).
#
#   Import-Module .\Lanai.psd1
#   Invoke-LanaiClassify -Uri http://BOX:8000 -Path .\photo.jpg -Model efficientnet-lite0
#   Get-LanaiHealth -Uri http://BOX:8000
#   Invoke-LanaiInfer -Uri http://BOX:8000 -Model tiny -InputName input -Shape 1,3,8,8 -Data (1..192 | % { $_ / 192 })
#
# HTTPS: import the box's ca.pem into "Trusted Root Certification Authorities" first. mTLS: pass
# -Certificate (Get-PfxCertificate .\laptop.p12, or a certificate from Cert:\CurrentUser\My).
# API keys: -ApiKey (sent as "Authorization: Bearer KEY"). A 503 or 429 is retried after its Retry-After.

function Invoke-LanaiRequest {
    # Invoke-RestMethod with the key, the certificate and retries; errors carry the server's message.
    param(
        [Parameter(Mandatory)] [string] $Uri,
        [string] $Method = 'Get',
        [hashtable] $Form,
        [object] $Body,
        [string] $ContentType,
        [string] $ApiKey,
        [System.Security.Cryptography.X509Certificates.X509Certificate] $Certificate,
        [int] $Retries = 4
    )
    $params = @{ Uri = $Uri; Method = $Method; Headers = @{} }
    if ($ApiKey) { $params.Headers['Authorization'] = "Bearer $ApiKey" }
    if ($Certificate) { $params.Certificate = $Certificate }
    if ($Form) { $params.Form = $Form }
    if ($null -ne $Body) { $params.Body = $Body; $params.ContentType = $ContentType }
    for ($attempt = 0; ; $attempt++) {
        try {
            return Invoke-RestMethod @params
        } catch {
            $response = $_.Exception.Response
            $status = if ($response) { [int]$response.StatusCode } else { 0 }
            if (($status -eq 503 -or $status -eq 429) -and $attempt -lt $Retries) {
                $wait = 1
                $after = $response.Headers.RetryAfter
                if ($after -and $after.Delta) { $wait = [math]::Ceiling($after.Delta.TotalSeconds) }
                Write-Verbose "lanai: HTTP $status, retrying in $wait s"
                Start-Sleep -Seconds ([math]::Min([math]::Max($wait, 0), 30))
                continue
            }
            if (-not $status) { throw }
            # lanai's errors are {"error": "what was wrong. Hint: what to do", "kind": "..."}
            $message = $_.ErrorDetails.Message
            try { $parsed = $message | ConvertFrom-Json; if ($parsed.error) { $message = $parsed.error } } catch { }
            if (-not $message) { $message = $_.Exception.Message }
            throw "lanai: HTTP ${status}: $message"
        }
    }
}

function Invoke-LanaiClassify {
    <#
    .SYNOPSIS
    Classify an image: POST /v1/models/{Model}/classify (without -Model: /predict, the default model).
    Returns the answer (label, score, predictions, timing). -Raw sends the bytes as the body instead
    of a multipart form.
    #>
    param(
        [Parameter(Mandatory)] [string] $Uri,
        [Parameter(Mandatory)] [string] $Path,
        [string] $Model,
        [int] $TopK = 0,
        [switch] $Raw,
        [string] $ApiKey,
        [System.Security.Cryptography.X509Certificates.X509Certificate] $Certificate
    )
    $base = $Uri.TrimEnd('/')
    if ($Model) { $target = "$base/v1/models/$([uri]::EscapeDataString($Model))/classify" } else { $target = "$base/predict" }
    if ($TopK -gt 0) { $target += "?top_k=$TopK" }
    $file = Get-Item -LiteralPath $Path
    $request = @{ Uri = $target; Method = 'Post'; ApiKey = $ApiKey; Certificate = $Certificate }
    if ($Raw) {
        $type = if ($file.Extension -eq '.png') { 'image/png' } else { 'image/jpeg' }
        Invoke-LanaiRequest @request -Body ([System.IO.File]::ReadAllBytes($file.FullName)) -ContentType $type
    } else {
        Invoke-LanaiRequest @request -Form @{ file = $file }
    }
}

function Get-LanaiHealth {
    <#
    .SYNOPSIS
    GET /health: the server's state (and, for an admin key, its models). 503 while starting or
    draining is returned as the state too, not thrown.
    #>
    param(
        [Parameter(Mandatory)] [string] $Uri,
        [string] $ApiKey,
        [System.Security.Cryptography.X509Certificates.X509Certificate] $Certificate
    )
    $params = @{ Uri = "$($Uri.TrimEnd('/'))/health"; SkipHttpErrorCheck = $true; Headers = @{} }
    if ($ApiKey) { $params.Headers['Authorization'] = "Bearer $ApiKey" }
    if ($Certificate) { $params.Certificate = $Certificate }
    Invoke-RestMethod @params
}

function Invoke-LanaiInfer {
    <#
    .SYNOPSIS
    Open Inference Protocol: POST /v2/models/{Model}/infer with one JSON tensor (row-major; -Shape
    includes the batch dimension). Returns the outputs (name, shape, datatype, data).
    #>
    param(
        [Parameter(Mandatory)] [string] $Uri,
        [Parameter(Mandatory)] [string] $Model,
        [Parameter(Mandatory)] [string] $InputName,
        [Parameter(Mandatory)] [int[]] $Shape,
        [Parameter(Mandatory)] [double[]] $Data,
        [string] $Datatype = 'FP32',
        [string] $ApiKey,
        [System.Security.Cryptography.X509Certificates.X509Certificate] $Certificate
    )
    $tensor = @{ name = $InputName; shape = $Shape; datatype = $Datatype; data = $Data }
    $body = @{ inputs = @($tensor) } | ConvertTo-Json -Depth 5 -Compress
    $target = "$($Uri.TrimEnd('/'))/v2/models/$([uri]::EscapeDataString($Model))/infer"
    (Invoke-LanaiRequest -Uri $target -Method Post -Body $body -ContentType 'application/json' `
        -ApiKey $ApiKey -Certificate $Certificate).outputs
}

Export-ModuleMember -Function Invoke-LanaiClassify, Get-LanaiHealth, Invoke-LanaiInfer
