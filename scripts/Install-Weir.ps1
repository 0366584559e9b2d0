<#
.SYNOPSIS
    Installs the Weir driver package on a Windows test VM and starts the driver.

.DESCRIPTION
    Checks that the package directory holds all five files (weir.sys, weir.inf,
    weir.cat, weir.pdb and the test certificate), then runs

        pnputil /add-driver <PackageDir>\weir.inf /install
        sc.exe start weir

    and reports the published name (oemNN.inf) Windows gave the package in the
    driver store; Uninstall-Weir.ps1 removes it again.

    Weir is a primitive (non-PnP) driver: pnputil processes the INF's
    DefaultInstall.NTamd64 sections, which copy weir.sys into the driver store
    and create the system-start kernel service "weir" (-OnDemand makes it
    demand-start). Windows 10 2004 or later
    is needed for that.

    Both package shapes install the same way: the one built on Linux by
    cargo xtask package carries the certificate as weir-test.cer, the one built
    on Windows by the WDK's cargo make as WDRLocalTestCert.cer. If both are
    present, weir-test.cer is the one reported.

    It also creates the stored-policy directory
    %SystemRoot%\System32\drivers\weir (where `weirctl policy load` stores
    weir.policy and the driver reads it at start) with a protected DACL: full
    control for SYSTEM and Administrators, no access for anyone else, no
    inherited entries. An existing directory gets the same DACL.

    Test signing must be on and the test certificate trusted first
    (Enable-TestSigning.ps1, then a reboot).

    This script has only been checked statically on Linux; it has not been run
    on real Windows by the project's CI.

.PARAMETER PackageDir
    The weir_package directory copied from the build
    (target\x86_64-pc-windows-msvc\release\weir_package from cargo xtask
    package, or target\<profile>\weir_package from cargo make). Defaults to
    the current directory.

.PARAMETER NoStart
    Install the package but do not start the service.

.PARAMETER OnDemand
    Make the service demand-start (sc.exe config weir start= demand) instead of
    the INF's system start, so a test VM boots without Weir until
    sc.exe start weir.

.EXAMPLE
    .\Install-Weir.ps1 -PackageDir .\weir_package
    Installs and starts Weir, then prints the service state and oemNN.inf name.

.EXAMPLE
    .\Install-Weir.ps1 -PackageDir .\weir_package -WhatIf
    Checks the package and shows what would run, without changing the system.

.NOTES
    Run from an elevated PowerShell (Run as administrator).
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [string] $PackageDir = '.',
    [switch] $NoStart,
    [switch] $OnDemand
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
$PSNativeCommandUseErrorActionPreference = $false
# Read-only helpers shared with the other scripts (keep it next to this one).
Import-Module -Name (Join-Path $PSScriptRoot 'WeirCommon.psm1') -Force -DisableNameChecking

$ServiceName = 'weir'
# The certificate, the fifth file, has one of two names (Find-WeirTestCertificate).
$PackageFiles = @('weir.sys', 'weir.inf', 'weir.cat', 'weir.pdb')

function Test-IsElevated {
    $identity = [Security.Principal.WindowsIdentity]::GetCurrent()
    $principal = New-Object Security.Principal.WindowsPrincipal($identity)
    return $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
}

if (-not (Test-IsElevated)) {
    throw 'Install-Weir.ps1 must run elevated: open PowerShell with "Run as administrator" and try again.'
}

# --- The package ------------------------------------------------------------

if (-not (Test-Path -LiteralPath $PackageDir -PathType Container)) {
    throw "Package directory not found: '$PackageDir'. Pass -PackageDir <path to weir_package>."
}
$PackageDir = (Resolve-Path -LiteralPath $PackageDir).ProviderPath
$missing = @($PackageFiles | Where-Object { -not (Test-Path -LiteralPath (Join-Path $PackageDir $_) -PathType Leaf) })
if ($missing.Count -gt 0) {
    throw "The package in '$PackageDir' is incomplete; missing: $($missing -join ', '). Copy the whole weir_package directory built by 'cargo xtask package' or 'cargo make'."
}
# Throws, naming both accepted file names, when the package has neither.
$certificatePath = Find-WeirTestCertificate -PackageDir $PackageDir
Write-Host "Test certificate: $(Split-Path -Leaf $certificatePath)"
$infPath = Join-Path $PackageDir 'weir.inf'

$signature = Get-AuthenticodeSignature -FilePath (Join-Path $PackageDir 'weir.sys')
$signer = 'no signer'
if ($null -ne $signature.SignerCertificate) { $signer = $signature.SignerCertificate.Subject }
Write-Host "weir.sys signature: $($signature.Status) ($signer)"
if ($signature.Status -ne 'Valid') {
    Write-Warning ("weir.sys signature status is '$($signature.Status)'. If the test certificate is not trusted yet, " +
        'run Enable-TestSigning.ps1 and reboot; the driver will not load otherwise.')
}

# --- Helpers ------------------------------------------------------------------

function Get-WeirPublishedName {
    # Published names (oemNN.inf) of the weir.inf packages in the driver store.
    $text = & pnputil.exe /enum-drivers
    if ($LASTEXITCODE -ne 0) {
        Write-Warning "pnputil /enum-drivers failed with exit code $LASTEXITCODE."
        return @()
    }
    return @(ConvertFrom-WeirEnumDrivers -Text $text)
}

$StartHints = @{
    2    = 'weir.sys was not found where the service points. Re-run this script.'
    577  = 'Windows cannot verify the signature (ERROR_INVALID_IMAGE_HASH). Is test signing on (bcdedit), Secure Boot off, the VM rebooted since, and the test certificate of the package (weir-test.cer or WDRLocalTestCert.cer) in LocalMachine\Root and TrustedPublisher? See Enable-TestSigning.ps1.'
    1058 = 'The service is disabled. Check the start type with: sc.exe qc weir'
    1060 = 'The service "weir" does not exist: the INF install did not create it. Check setupapi.dev.log (Collect-WeirLogs.ps1).'
    1275 = 'Windows blocked the driver (ERROR_DRIVER_BLOCKED). Check the CodeIntegrity event log (Collect-WeirLogs.ps1).'
}

# --- Install ------------------------------------------------------------------

$published = @()
if ($PSCmdlet.ShouldProcess($infPath, 'pnputil /add-driver /install')) {
    $output = & pnputil.exe /add-driver $infPath /install
    $code = $LASTEXITCODE
    $output | ForEach-Object { Write-Verbose $_ }
    # 0: done. 3010: done, reboot required. 259 (ERROR_NO_MORE_ITEMS): the
    # package was added but pnputil found no device to install it on, which a
    # primitive driver has none of; the service check below decides.
    if (@(0, 259, 3010) -notcontains $code) {
        throw "pnputil /add-driver '$infPath' /install failed with exit code ${code}:`n$($output -join "`n")`nCheck the signature and test signing (Enable-TestSigning.ps1), then setupapi.dev.log (Collect-WeirLogs.ps1)."
    }
    if ($code -eq 3010) {
        Write-Warning 'pnputil says a reboot is required to finish the installation.'
    }
    $published = @(($output -join "`n") | Select-String -Pattern 'oem\d+\.inf' -AllMatches |
        ForEach-Object { $_.Matches } | ForEach-Object { $_.Value.ToLowerInvariant() } | Sort-Object -Unique)
    if ($published.Count -eq 0) {
        $published = Get-WeirPublishedName
    }
    if ((Get-WeirServiceState -Name $ServiceName) -eq 'Absent') {
        throw "pnputil added the package (exit code $code) but the service '$ServiceName' does not exist. Check setupapi.dev.log (Collect-WeirLogs.ps1) for the DefaultInstall section."
    }
}

# --- Start type ------------------------------------------------------------------

if ($OnDemand -and $PSCmdlet.ShouldProcess($ServiceName, 'sc.exe config start= demand')) {
    $output = & sc.exe config $ServiceName start= demand
    if ($LASTEXITCODE -ne 0) {
        throw "sc.exe config $ServiceName start= demand failed with exit code ${LASTEXITCODE}: $($output -join ' ')"
    }
    Write-Host 'Service weir: demand start (-OnDemand); it does not load at boot.'
}

# --- Stored-policy directory ----------------------------------------------------

# Only SYSTEM and Administrators may change the stored policy: a fresh DACL
# with exactly two entries, protected from inheritance (Set-Acl replaces the
# whole DACL, so entries added to an existing directory are removed).
$PolicyDir = Join-Path $env:SystemRoot 'System32\drivers\weir'
$PolicyDirSids = @('S-1-5-18', 'S-1-5-32-544')
if ($PSCmdlet.ShouldProcess($PolicyDir, 'create with a SYSTEM and Administrators only DACL')) {
    if (-not (Test-Path -LiteralPath $PolicyDir -PathType Container)) {
        New-Item -ItemType Directory -Path $PolicyDir | Out-Null
    }
    $acl = New-Object System.Security.AccessControl.DirectorySecurity
    $acl.SetAccessRuleProtection($true, $false)
    foreach ($sid in $PolicyDirSids) {
        $identity = New-Object System.Security.Principal.SecurityIdentifier($sid)
        $rule = New-Object System.Security.AccessControl.FileSystemAccessRule($identity, 'FullControl',
            'ContainerInherit,ObjectInherit', 'None', 'Allow')
        $acl.AddAccessRule($rule)
    }
    Set-Acl -LiteralPath $PolicyDir -AclObject $acl
    Write-Host "Stored-policy directory: $PolicyDir (SYSTEM and Administrators only)"
}

# --- Start --------------------------------------------------------------------

if ($NoStart) {
    Write-Host 'Not starting the service (-NoStart). Start it with: sc.exe start weir'
}
elseif ((Get-WeirServiceState -Name $ServiceName) -eq 'Running') {
    Write-Host 'Service weir is already running.'
}
elseif ($PSCmdlet.ShouldProcess($ServiceName, 'sc.exe start')) {
    $output = & sc.exe start $ServiceName
    $code = $LASTEXITCODE
    if ($code -ne 0 -and $code -ne 1056) {
        $hint = ''
        if ($StartHints.ContainsKey($code)) { $hint = $StartHints[$code] }
        throw "sc.exe start $ServiceName failed with exit code ${code}: $($output -join ' ') $hint"
    }
}

# --- Report -------------------------------------------------------------------

if (-not $WhatIfPreference) {
    if ($published.Count -eq 0) {
        $published = Get-WeirPublishedName
    }
    Write-Host "Service weir: $(Get-WeirServiceState -Name $ServiceName)"
    if ($published.Count -gt 0) {
        Write-Host "Driver store package: $($published -join ', ') (original name weir.inf)"
    }
    else {
        Write-Warning 'Could not find the published oemNN.inf name in pnputil /enum-drivers output.'
    }
    Write-Host 'Check the WFP filters with: netsh wfp show filters file=filters.xml; Select-String -Path filters.xml -Pattern Weir'
}
