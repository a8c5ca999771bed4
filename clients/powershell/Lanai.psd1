# Module manifest for Lanai (PowerShell 7). Untested: PowerShell is not in Debian's archive, so
# lanai's CI cannot run it (see Lanai.psm1).
@{
    RootModule           = 'Lanai.psm1'
    ModuleVersion        = '0.1.0'
    GUID                 = '8d6f4c1e-2b7a-4f0e-9c3d-5a1b7e2f4c60'
    Author               = 'lanai'
    Description          = 'Classify images and run Open Inference Protocol requests on a lanai box.'
    PowerShellVersion    = '7.0'
    CompatiblePSEditions = @('Core')
    FunctionsToExport    = @('Invoke-LanaiClassify', 'Get-LanaiHealth', 'Invoke-LanaiInfer')
    CmdletsToExport      = @()
    VariablesToExport    = @()
    AliasesToExport      = @()
}
