<#
.SYNOPSIS
    Removes the Weir driver from a Windows test VM, whatever state it is in.

.DESCRIPTION
    Idempotent clean-up. Each step is skipped when there is nothing to do:

      0. if the service has a FailMode setting (Parameters\FailMode), set it
         to 0 and start the driver once more (stopping it first if it runs):
         a start with FailMode = 0 deletes Weir's persistent fail-closed
         filters, provider and sublayer from BFE. If FailMode was 1 and that
         start fails, the script stops before deleting anything, so that it
         never leaves a machine blocked by filters nothing can remove any more
         (fix the start, or see docs/deployment.md, "Failure mode");
      1. stop the "weir" service if it is running (sc.exe stop weir), waiting
         for a STOP_PENDING service to finish stopping;
      2. delete the service if it exists (sc.exe delete weir);
      3. delete every driver-store package whose original name is weir.inf
         (found by parsing pnputil /enum-drivers), with
         pnputil /delete-driver oemNN.inf /uninstall /force;
      4. delete the stored-policy directory
         %SystemRoot%\System32\drivers\weir (unless -KeepPolicy).

    Half-installed states are fine: a service without a package, a package
    without a service, several old packages, a service stuck in STOP_PENDING
    (it is then marked for deletion and goes away at the next reboot).
    Something that is already gone is never an error. The script fails only
    when a step that had work to do failed, after trying all the others.

    This script has only been checked statically on Linux; it has not been run
    on real Windows by the project's CI.

.PARAMETER StopTimeoutSeconds
    How long to wait for the driver to unload. Default 30.

.PARAMETER KeepPolicy
    Keep the stored policy (%SystemRoot%\System32\drivers\weir\weir.policy)
    for a later reinstall.

.EXAMPLE
    .\Uninstall-Weir.ps1
    Stops and deletes the service and removes every weir.inf package.

.EXAMPLE
    .\Uninstall-Weir.ps1 -WhatIf
    Lists what would be stopped, deleted and removed.

.NOTES
    Run from an elevated PowerShell (Run as administrator).
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [ValidateRange(1, 600)]
    [int] $StopTimeoutSeconds = 30,
    [switch] $KeepPolicy
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
$PSNativeCommandUseErrorActionPreference = $false
# Read-only helpers shared with the other scripts (keep it next to this one).
Import-Module -Name (Join-Path $PSScriptRoot 'WeirCommon.psm1') -Force -DisableNameChecking

$ServiceName = 'weir'
$failures = New-Object System.Collections.Generic.List[string]
$rebootNeeded = $false

function Test-IsElevated {
    $identity = [Security.Principal.WindowsIdentity]::GetCurrent()
    $principal = New-Object Security.Principal.WindowsPrincipal($identity)
    return $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
}

if (-not (Test-IsElevated)) {
    throw 'Uninstall-Weir.ps1 must run elevated: open PowerShell with "Run as administrator" and try again.'
}

function Get-WeirPublishedName {
    # Published names (oemNN.inf) of driver-store packages whose original name
    # is weir.inf. pnputil's labels are localized, so each blank-line separated
    # record is matched on its values: one that looks like oemNN.inf and one
    # that equals weir.inf.
    $names = New-Object System.Collections.Generic.List[string]
    $text = & pnputil.exe /enum-drivers
    if ($LASTEXITCODE -ne 0) {
        Write-Warning "pnputil /enum-drivers failed with exit code $LASTEXITCODE; falling back to Get-WindowsDriver."
        $text = @()
    }
    foreach ($published in @(ConvertFrom-WeirEnumDrivers -Text $text)) { $names.Add($published) }
    # Cross-check with DISM, whose property names are not localized.
    try {
        Get-WindowsDriver -Online -ErrorAction Stop |
            Where-Object { (Split-Path -Leaf $_.OriginalFileName) -eq 'weir.inf' } |
            ForEach-Object { $names.Add(([string]$_.Driver).ToLowerInvariant()) }
    }
    catch {
        Write-Verbose "Get-WindowsDriver unavailable: $($_.Exception.Message)"
    }
    return @($names | Sort-Object -Unique)
}

# --- 0. Release the fail-closed filters --------------------------------------
# With FailMode = 1, Weir's persistent block filters stay in BFE after it
# stops (that is their purpose). Only Weir removes them: a start with
# FailMode = 0 deletes them (src/failsafe.rs). So set 0, start once, and only
# then stop and delete.

$ParametersKey = "HKLM:\SYSTEM\CurrentControlSet\Services\$ServiceName\Parameters"
$failMode = $null
if ((Get-WeirServiceState -Name $ServiceName) -ne 'Absent' -and (Test-Path -LiteralPath $ParametersKey)) {
    $failMode = (Get-ItemProperty -LiteralPath $ParametersKey -ErrorAction SilentlyContinue).FailMode
}
if ($null -eq $failMode) {
    Write-Host 'No FailMode setting: no fail-closed filters to release.'
}
elseif ($PSCmdlet.ShouldProcess($ServiceName, 'FailMode = 0, then start once to delete the fail-closed filters')) {
    Set-ItemProperty -LiteralPath $ParametersKey -Name 'FailMode' -Value 0 -Type DWord
    if ((Get-WeirServiceState -Name $ServiceName) -eq 'Running') {
        $null = & sc.exe stop $ServiceName
        $deadline = (Get-Date).AddSeconds($StopTimeoutSeconds)
        while ((Get-WeirServiceState -Name $ServiceName) -ne 'Stopped' -and (Get-Date) -lt $deadline) {
            Start-Sleep -Milliseconds 500
        }
    }
    $output = & sc.exe start $ServiceName
    $code = $LASTEXITCODE
    # 1056: already running (it never stopped): its filters were already
    # replaced by the running driver's; a stop with FailMode = 0 follows.
    if (@(0, 1056) -contains $code) {
        Write-Host 'Weir started with FailMode = 0: its fail-closed filters are deleted.'
    }
    elseif ($failMode -eq 1) {
        throw ("sc.exe start $ServiceName (FailMode = 0) failed with exit code ${code}: $($output -join ' ')`n" +
            'Nothing was deleted: Weir is the only one that removes its fail-closed filters, so it stays installed ' +
            'until a start succeeds. Fix the start (Collect-WeirLogs.ps1) and run this script again.')
    }
    else {
        Write-Warning "sc.exe start $ServiceName failed with exit code $code (FailMode was $failMode, not fail closed); continuing."
    }
}

# --- 1. Stop ------------------------------------------------------------------

$state = Get-WeirServiceState -Name $ServiceName
Write-Host "Service weir: $state"
if ($state -eq 'Absent' -or $state -eq 'Stopped') {
    Write-Host 'Nothing to stop.'
}
else {
    if ($state -ne 'Stop Pending' -and $PSCmdlet.ShouldProcess($ServiceName, 'sc.exe stop')) {
        $output = & sc.exe stop $ServiceName
        $code = $LASTEXITCODE
        # 1060: no such service; 1062: not started; 1061: cannot accept the
        # control now (already stopping). None of these is a failure here.
        if (@(0, 1060, 1061, 1062) -notcontains $code) {
            $failures.Add("sc.exe stop $ServiceName failed with exit code ${code}: $($output -join ' ')")
        }
    }
    if (-not $WhatIfPreference) {
        $deadline = (Get-Date).AddSeconds($StopTimeoutSeconds)
        while (@('Absent', 'Stopped') -notcontains (Get-WeirServiceState -Name $ServiceName) -and (Get-Date) -lt $deadline) {
            Start-Sleep -Milliseconds 500
        }
        $state = Get-WeirServiceState -Name $ServiceName
        if (@('Absent', 'Stopped') -notcontains $state) {
            Write-Warning ("Service weir is still '$state' after $StopTimeoutSeconds s: its DriverUnload has not returned " +
                '(WFP waits for classify calls in flight). Continuing; the service will be marked for deletion and a reboot finishes the job. ' +
                'If this repeats, break in with WinDbg (docs/debugging.md).')
            $rebootNeeded = $true
        }
        else {
            Write-Host "Service weir: $state"
        }
    }
}

# --- 2. Delete the service ----------------------------------------------------

if ((Get-WeirServiceState -Name $ServiceName) -eq 'Absent') {
    Write-Host 'No service to delete.'
}
elseif ($PSCmdlet.ShouldProcess($ServiceName, 'sc.exe delete')) {
    $output = & sc.exe delete $ServiceName
    $code = $LASTEXITCODE
    if ($code -eq 1072) {
        # ERROR_SERVICE_MARKED_FOR_DELETE
        Write-Warning 'Service weir is already marked for deletion; it disappears once it has stopped (or after a reboot).'
        $rebootNeeded = $true
    }
    elseif (@(0, 1060) -notcontains $code) {
        $failures.Add("sc.exe delete $ServiceName failed with exit code ${code}: $($output -join ' ')")
    }
    else {
        Write-Host 'Service weir deleted.'
    }
}

# --- 3. Remove the driver-store packages ---------------------------------------

$packages = @(Get-WeirPublishedName)
if ($packages.Count -eq 0) {
    Write-Host 'No weir.inf package in the driver store.'
}
foreach ($package in $packages) {
    if ($PSCmdlet.ShouldProcess($package, 'pnputil /delete-driver /uninstall /force')) {
        $output = & pnputil.exe /delete-driver $package /uninstall /force
        $code = $LASTEXITCODE
        if ($code -eq 0) {
            Write-Host "Removed $package from the driver store."
        }
        elseif ($code -eq 3010) {
            Write-Host "Removed $package from the driver store (reboot required to finish)."
            $rebootNeeded = $true
        }
        elseif (@(Get-WeirPublishedName) -notcontains $package) {
            # Gone anyway (removed concurrently, or pnputil reported a
            # secondary problem after deleting it).
            Write-Host "$package is no longer in the driver store (pnputil exit code $code)."
        }
        else {
            $failures.Add("pnputil /delete-driver $package /uninstall /force failed with exit code ${code}: $($output -join ' ')")
        }
    }
}

# --- 4. Remove the stored policy --------------------------------------------------

$PolicyDir = Join-Path $env:SystemRoot 'System32\drivers\weir'
if ($KeepPolicy) {
    Write-Host "Keeping the stored policy in $PolicyDir (-KeepPolicy)."
}
elseif (-not (Test-Path -LiteralPath $PolicyDir)) {
    Write-Host 'No stored-policy directory.'
}
elseif ($PSCmdlet.ShouldProcess($PolicyDir, 'delete the stored policy')) {
    try {
        Remove-Item -LiteralPath $PolicyDir -Recurse -Force
        Write-Host "Removed $PolicyDir."
    }
    catch {
        $failures.Add("Removing $PolicyDir failed: $($_.Exception.Message)")
    }
}

# --- Summary --------------------------------------------------------------------

if ($rebootNeeded) {
    Write-Warning 'Reboot to finish removing Weir (Restart-Computer).'
}
if ($failures.Count -gt 0) {
    throw ("Uninstall-Weir.ps1 could not finish:`n  " + ($failures -join "`n  ") +
        "`nCollect diagnostics with Collect-WeirLogs.ps1.")
}
Write-Host 'Weir is uninstalled.'
