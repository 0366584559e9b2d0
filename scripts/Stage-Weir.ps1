<#
.SYNOPSIS
    Stages the Weir driver package in the driver store with devcon, or removes it.

.DESCRIPTION
    Without -Remove: runs devcon dp_add <PackageDir>\weir.inf, which checks the
    package's catalog signature and copies it into the driver store as
    oemNN.inf. Staging does NOT create the "weir" service: Weir is a primitive
    (non-PnP) driver and devcon has no command that runs its DefaultInstall
    section. To get a running driver after staging, run Install-Weir.ps1 (its
    pnputil /add-driver /install reuses the staged package).

    With -Remove: runs devcon dp_delete oemNN.inf for every driver-store
    package whose original name is weir.inf (or only -PublishedName).
    Uninstall-Weir.ps1 is the complete clean-up (service included).

    devcon.exe is not part of Windows. It is looked up in -DevconPath, then
    PATH, then the Windows Driver Kit's Tools directory
    (Program Files (x86)\Windows Kits\10\Tools\<version>\x64).

    This script has only been checked statically on Linux; it has not been run
    on real Windows by the project's CI.

.PARAMETER PackageDir
    The weir_package directory. Defaults to the current directory.

.PARAMETER Remove
    Delete the staged package(s) instead of adding one.

.PARAMETER PublishedName
    With -Remove: the oemNN.inf to delete. Default: every package whose
    original name is weir.inf.

.PARAMETER Force
    With -Remove: pass -f to devcon so that a package still in use is deleted.

.PARAMETER DevconPath
    Full path to devcon.exe, if it is neither in PATH nor in the WDK.

.EXAMPLE
    .\Stage-Weir.ps1 -PackageDir .\weir_package
    Adds weir.inf to the driver store and prints its oemNN.inf name.

.EXAMPLE
    .\Stage-Weir.ps1 -Remove -WhatIf
    Shows which oemNN.inf packages would be deleted.

.NOTES
    Run from an elevated PowerShell (Run as administrator).
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [string] $PackageDir = '.',
    [switch] $Remove,
    [ValidatePattern('^oem\d+\.inf$')]
    [string] $PublishedName,
    [switch] $Force,
    [string] $DevconPath
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
$PSNativeCommandUseErrorActionPreference = $false
# Read-only helpers shared with the other scripts (keep it next to this one).
Import-Module -Name (Join-Path $PSScriptRoot 'WeirCommon.psm1') -Force -DisableNameChecking

function Test-IsElevated {
    $identity = [Security.Principal.WindowsIdentity]::GetCurrent()
    $principal = New-Object Security.Principal.WindowsPrincipal($identity)
    return $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
}

if (-not (Test-IsElevated)) {
    throw 'Stage-Weir.ps1 must run elevated: open PowerShell with "Run as administrator" and try again.'
}

function Find-Devcon {
    if ($DevconPath) {
        if (Test-Path -LiteralPath $DevconPath -PathType Leaf) { return (Resolve-Path -LiteralPath $DevconPath).ProviderPath }
        throw "devcon.exe not found at -DevconPath '$DevconPath'."
    }
    $command = Get-Command -Name 'devcon.exe' -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if ($null -ne $command) { return $command.Source }

    $roots = New-Object System.Collections.Generic.List[string]
    foreach ($variable in @('ProgramFiles(x86)', 'ProgramFiles')) {
        $value = [Environment]::GetEnvironmentVariable($variable)
        if ($value) { $roots.Add((Join-Path $value 'Windows Kits\10\Tools')) }
    }
    $kitsRoot = [Environment]::GetEnvironmentVariable('WDKContentRoot')
    if ($kitsRoot) { $roots.Add((Join-Path $kitsRoot 'Tools')) }
    foreach ($root in $roots) {
        if (-not (Test-Path -LiteralPath $root -PathType Container)) { continue }
        # Newer kits: Tools\<version>\x64\devcon.exe; older: Tools\x64\devcon.exe.
        $candidates = @(Get-ChildItem -LiteralPath $root -Filter 'devcon.exe' -Recurse -File -ErrorAction SilentlyContinue |
            Where-Object { $_.Directory.Name -eq 'x64' } |
            Sort-Object -Property FullName -Descending)
        if ($candidates.Count -gt 0) { return $candidates[0].FullName }
    }
    throw ('devcon.exe was not found in PATH or in the Windows Driver Kit Tools directory. Install the WDK ' +
        '(devcon is in Windows Kits\10\Tools\<version>\x64), copy devcon.exe next to this script and pass ' +
        '-DevconPath, or use Install-Weir.ps1, which needs only the built-in pnputil.')
}

function Get-WeirPublishedName {
    # Published names (oemNN.inf) of the weir.inf packages in the driver store.
    $text = & pnputil.exe /enum-drivers
    if ($LASTEXITCODE -ne 0) {
        throw "pnputil /enum-drivers failed with exit code $LASTEXITCODE."
    }
    return @(ConvertFrom-WeirEnumDrivers -Text $text)
}

$devcon = Find-Devcon
Write-Verbose "Using $devcon"

if (-not $Remove) {
    # --- Stage ---------------------------------------------------------------
    $infPath = Join-Path $PackageDir 'weir.inf'
    if (-not (Test-Path -LiteralPath $infPath -PathType Leaf)) {
        throw "weir.inf not found in '$PackageDir'. Pass -PackageDir <path to weir_package>."
    }
    foreach ($file in @('weir.sys', 'weir.cat')) {
        if (-not (Test-Path -LiteralPath (Join-Path $PackageDir $file) -PathType Leaf)) {
            throw "$file is missing from '$PackageDir'; the driver store will not accept the package without it."
        }
    }
    $infPath = (Resolve-Path -LiteralPath $infPath).ProviderPath
    if ($PSCmdlet.ShouldProcess($infPath, 'devcon dp_add')) {
        $output = & $devcon dp_add $infPath
        $code = $LASTEXITCODE
        $output | ForEach-Object { Write-Verbose $_ }
        if ($code -ne 0) {
            throw "devcon dp_add '$infPath' failed with exit code ${code}:`n$($output -join "`n")`nIs test signing on and the package test certificate (weir-test.cer or WDRLocalTestCert.cer) trusted (Enable-TestSigning.ps1)?"
        }
        $published = @(($output -join "`n") | Select-String -Pattern 'oem\d+\.inf' -AllMatches |
            ForEach-Object { $_.Matches } | ForEach-Object { $_.Value.ToLowerInvariant() } | Sort-Object -Unique)
        if ($published.Count -eq 0) { $published = @(Get-WeirPublishedName) }
        Write-Host "Staged weir.inf as: $($published -join ', ')"
        Write-Host 'The service is not created by staging. Install-Weir.ps1 (pnputil /add-driver /install) creates it.'
    }
}
else {
    # --- Remove --------------------------------------------------------------
    if ($PublishedName) {
        $packages = @($PublishedName.ToLowerInvariant())
    }
    else {
        $packages = @(Get-WeirPublishedName)
    }
    if ($packages.Count -eq 0) {
        Write-Host 'No weir.inf package in the driver store; nothing to remove.'
    }
    foreach ($package in $packages) {
        if ($PSCmdlet.ShouldProcess($package, 'devcon dp_delete')) {
            if ($Force) {
                $output = & $devcon -f dp_delete $package
            }
            else {
                $output = & $devcon dp_delete $package
            }
            $code = $LASTEXITCODE
            if ($code -ne 0) {
                throw "devcon dp_delete $package failed with exit code ${code}:`n$($output -join "`n")`nIf the driver is still installed, run Uninstall-Weir.ps1 (or pass -Force)."
            }
            Write-Host "Removed $package from the driver store."
        }
    }
}
