<#
.SYNOPSIS
    Collects everything needed to diagnose a Weir install or load problem into one zip.

.DESCRIPTION
    Gathers, into weir-logs-<yyyyMMdd-HHmmss>.zip in -OutputDir:

      service.txt         sc.exe query weir, sc.exe qc weir, the WMI driver record
      driver-store.txt    pnputil /enum-drivers (and the weir.inf records from it)
      setupapi.txt        the tail of %windir%\INF\setupapi.dev.log, and its weir sections
      events-*.txt        System log entries from Service Control Manager,
                          Kernel-PnP and CodeIntegrity, plus the CodeIntegrity
                          Operational log, for the last -Hours hours
      boot.txt            bcdedit /enum {current} (testsigning, debug) and the
                          options the running system booted with
      debug-print.txt     the Debug Print Filter registry key (IHVNETWORK)
      wfp-state.xml       netsh wfp show state
      wfp-filters.xml     netsh wfp show filters
      wfp-weir.txt        the Weir objects found in those two files
      errors.txt          any collection step that failed

    Collection is best effort: a step that fails is recorded in errors.txt and
    the others still run. Nothing in the system is changed; the only writes are
    the zip and a temporary directory next to it, which is removed afterwards.
    The kernel debugger key (bcdedit /dbgsettings) is deliberately NOT
    collected.

    This script has only been checked statically on Linux; it has not been run
    on real Windows by the project's CI.

.PARAMETER OutputDir
    Where to write the zip. Defaults to the current directory.

.PARAMETER Hours
    How far back to read the event logs. Default 24.

.PARAMETER SetupApiLines
    How many lines of setupapi.dev.log to keep. Default 500.

.EXAMPLE
    .\Collect-WeirLogs.ps1
    Writes weir-logs-<timestamp>.zip into the current directory.

.EXAMPLE
    .\Collect-WeirLogs.ps1 -OutputDir $env:USERPROFILE\Desktop -Hours 2 -WhatIf
    Shows where the zip would go without collecting anything.

.NOTES
    Run from an elevated PowerShell (Run as administrator): netsh wfp, the
    driver store and some event logs need it.
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [string] $OutputDir = '.',
    [ValidateRange(1, 8760)]
    [int] $Hours = 24,
    [ValidateRange(10, 100000)]
    [int] $SetupApiLines = 500
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
$PSNativeCommandUseErrorActionPreference = $false

$ServiceName = 'weir'

function Test-IsElevated {
    $identity = [Security.Principal.WindowsIdentity]::GetCurrent()
    $principal = New-Object Security.Principal.WindowsPrincipal($identity)
    return $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
}

if (-not (Test-IsElevated)) {
    throw 'Collect-WeirLogs.ps1 must run elevated: open PowerShell with "Run as administrator" and try again.'
}

if (-not (Test-Path -LiteralPath $OutputDir -PathType Container)) {
    throw "Output directory not found: '$OutputDir'."
}
$OutputDir = (Resolve-Path -LiteralPath $OutputDir).ProviderPath
$stamp = Get-Date -Format 'yyyyMMdd-HHmmss'
$workDir = Join-Path $OutputDir "weir-logs-$stamp"
$zipPath = Join-Path $OutputDir "weir-logs-$stamp.zip"
$errorsFile = Join-Path $workDir 'errors.txt'

function Save-Section {
    # Runs $Body and appends a header and its output to $File in the work
    # directory; a failure is written to errors.txt instead of stopping the
    # collection. -Native: $Body runs a native tool; its stderr is kept and its
    # exit code recorded.
    param(
        [Parameter(Mandatory, Position = 0)] [string] $File,
        [Parameter(Mandatory, Position = 1)] [string] $Title,
        [Parameter(Mandatory, Position = 2)] [scriptblock] $Body,
        [switch] $Native
    )
    $path = Join-Path $workDir $File
    Add-Content -LiteralPath $path -Value @('', "===== $Title =====") -Encoding UTF8
    try {
        if ($Native) {
            # Windows PowerShell 5.1 turns merged stderr lines into error
            # records, which 'Stop' would make fatal: relax it for this call.
            $ErrorActionPreference = 'Continue'
            $global:LASTEXITCODE = 0
            $lines = @(& $Body 2>&1 | ForEach-Object { "$_" })
            $lines += "(exit code $LASTEXITCODE)"
            $ErrorActionPreference = 'Stop'
            $output = $lines | Out-String -Width 4096
        }
        else {
            $output = & $Body | Out-String -Width 4096
        }
        Add-Content -LiteralPath $path -Value $output -Encoding UTF8
    }
    catch {
        $message = "[$Title] $($_.Exception.Message)"
        Add-Content -LiteralPath $path -Value "FAILED: $message" -Encoding UTF8
        Add-Content -LiteralPath $errorsFile -Value $message -Encoding UTF8
    }
}

if ($PSCmdlet.ShouldProcess($zipPath, 'Collect Weir diagnostics')) {
    New-Item -ItemType Directory -Path $workDir -Force | Out-Null
    Set-Content -LiteralPath $errorsFile -Value "Collect-WeirLogs.ps1 $stamp on $env:COMPUTERNAME" -Encoding UTF8

    # --- Service -----------------------------------------------------------------

    Save-Section 'service.txt' 'sc.exe query weir' -Native { sc.exe query $ServiceName }
    Save-Section 'service.txt' 'sc.exe qc weir' -Native { sc.exe qc $ServiceName }
    Save-Section 'service.txt' 'Win32_SystemDriver weir' {
        Get-CimInstance -ClassName Win32_SystemDriver -Filter "Name='$ServiceName'" | Format-List *
    }
    Save-Section 'service.txt' 'Service registry key' {
        Get-ItemProperty -Path "HKLM:\SYSTEM\CurrentControlSet\Services\$ServiceName" | Format-List *
    }
    Save-Section 'service.txt' 'Signature of the loaded weir.sys' {
        $driver = Get-CimInstance -ClassName Win32_SystemDriver -Filter "Name='$ServiceName'"
        if ($null -eq $driver) { 'service not present' }
        else {
            $path = [string]$driver.PathName -replace '^\\\?\?\\', ''
            Get-AuthenticodeSignature -FilePath $path | Format-List -Property 'Status', 'StatusMessage', 'SignerCertificate', 'Path'
        }
    }

    # --- Driver store --------------------------------------------------------------

    Save-Section 'driver-store.txt' 'pnputil /enum-drivers' -Native { pnputil.exe /enum-drivers }
    Save-Section 'driver-store.txt' 'Get-WindowsDriver (weir.inf)' {
        Get-WindowsDriver -Online | Where-Object { $_.OriginalFileName -like '*\weir.inf' } | Format-List *
    }

    # --- setupapi.dev.log ------------------------------------------------------------

    $setupApiLog = Join-Path $env:windir 'INF\setupapi.dev.log'
    Save-Section 'setupapi.txt' "Last $SetupApiLines lines of setupapi.dev.log" {
        Get-Content -LiteralPath $setupApiLog -Tail $SetupApiLines
    }
    Save-Section 'setupapi.txt' 'setupapi.dev.log lines mentioning weir' {
        Select-String -LiteralPath $setupApiLog -Pattern 'weir' -Context 3, 12 | ForEach-Object { $_.ToString() }
    }

    # --- Event logs ---------------------------------------------------------------------

    $since = (Get-Date).AddHours(-$Hours)
    $systemProviders = @('Service Control Manager', 'Microsoft-Windows-Kernel-PnP', 'Microsoft-Windows-CodeIntegrity')
    foreach ($provider in $systemProviders) {
        $file = 'events-system-' + ($provider -replace '^Microsoft-Windows-', '' -replace '\s', '') + '.txt'
        Save-Section $file "System log, provider $provider, since $since" {
            # No matching event is not an error.
            Get-WinEvent -FilterHashtable @{ LogName = 'System'; ProviderName = $provider; StartTime = $since } -ErrorAction SilentlyContinue |
                Format-List -Property 'TimeCreated', 'Id', 'LevelDisplayName', 'ProviderName', 'Message'
        }
    }
    foreach ($log in @('Microsoft-Windows-CodeIntegrity/Operational', 'Microsoft-Windows-Kernel-PnP/Configuration')) {
        $file = 'events-' + (($log -split '/')[0] -replace '^Microsoft-Windows-', '') + '.txt'
        Save-Section $file "$log since $since" {
            Get-WinEvent -FilterHashtable @{ LogName = $log; StartTime = $since } -ErrorAction SilentlyContinue |
                Format-List -Property 'TimeCreated', 'Id', 'LevelDisplayName', 'ProviderName', 'Message'
        }
    }

    # --- Boot configuration and debug print filter -------------------------------------

    Save-Section 'boot.txt' 'bcdedit /enum {current}' -Native { bcdedit.exe /enum '{current}' }
    Save-Section 'boot.txt' 'Options the running system booted with' {
        (Get-ItemProperty -Path 'HKLM:\SYSTEM\CurrentControlSet\Control' -Name SystemStartOptions).SystemStartOptions
    }
    Save-Section 'boot.txt' 'Secure Boot' { Confirm-SecureBootUEFI }
    Save-Section 'debug-print.txt' 'Debug Print Filter (IHVNETWORK = 0xf enables Weir traces)' {
        Get-ItemProperty -Path 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager\Debug Print Filter' | Format-List *
    }

    # --- WFP -------------------------------------------------------------------------------

    $wfpState = Join-Path $workDir 'wfp-state.xml'
    $wfpFilters = Join-Path $workDir 'wfp-filters.xml'
    Save-Section 'wfp.txt' 'netsh wfp show state' -Native { netsh.exe wfp show state "file=$wfpState" }
    Save-Section 'wfp.txt' 'netsh wfp show filters' -Native { netsh.exe wfp show filters "file=$wfpFilters" }
    Save-Section 'wfp-weir.txt' 'Weir objects in the WFP dumps' {
        foreach ($dump in @($wfpState, $wfpFilters)) {
            if (Test-Path -LiteralPath $dump) {
                $hits = @(Select-String -LiteralPath $dump -Pattern '<name>Weir[^<]*</name>' -AllMatches |
                    ForEach-Object { $_.Matches } | ForEach-Object { $_.Value })
                "$(Split-Path -Leaf $dump): $($hits.Count) Weir names"
                $hits | Sort-Object -Unique
            }
            else {
                "$(Split-Path -Leaf $dump): not written"
            }
        }
    }

    # --- Zip ---------------------------------------------------------------------------------

    # errors.txt starts with one header line; more lines are failed steps.
    $failedSteps = @(Get-Content -LiteralPath $errorsFile).Count - 1
    Compress-Archive -Path (Join-Path $workDir '*') -DestinationPath $zipPath -Force
    Remove-Item -LiteralPath $workDir -Recurse -Force
    Write-Host "Wrote $zipPath"
    if ($failedSteps -gt 0) {
        Write-Warning "$failedSteps collection step(s) failed; see errors.txt in the zip."
    }
}
