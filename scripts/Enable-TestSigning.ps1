<#
.SYNOPSIS
    Prepares a Windows test VM to load the test-signed Weir driver.

.DESCRIPTION
    Turns on test signing for the current boot entry (bcdedit /set testsigning on)
    and imports the package's test certificate (DER) into the local machine's
    Trusted Root Certification Authorities (Cert:\LocalMachine\Root) and
    Trusted Publishers (Cert:\LocalMachine\TrustedPublisher) stores.

    The certificate is weir-test.cer in a package built by cargo xtask package
    and WDRLocalTestCert.cer in one built by the WDK's cargo make; either is
    accepted (weir-test.cer if both are there).

    The script is idempotent: a setting that is already on and a certificate
    that is already in a store are left alone.

    Test signing only takes effect after a reboot. Secure Boot blocks test
    signing: bcdedit refuses to change the setting ("The value is protected by
    Secure Boot policy") until Secure Boot is turned off in the VM's firmware
    settings (Hyper-V: VM Settings > Security > clear "Enable Secure Boot").

    This script has only been checked statically on Linux; it has not been run
    on real Windows by the project's CI.

.PARAMETER PackageDir
    Directory holding the Weir driver package. The certificate is looked up
    there as weir-test.cer, else WDRLocalTestCert.cer, unless -CertificatePath
    is given. Defaults to the current directory.

.PARAMETER CertificatePath
    Path to the DER test certificate to trust. Overrides -PackageDir.

.PARAMETER SkipTestSigning
    Only import the certificate; leave the boot configuration alone.

.EXAMPLE
    .\Enable-TestSigning.ps1 -PackageDir .\weir_package -WhatIf
    Shows what would change without changing anything.

.EXAMPLE
    .\Enable-TestSigning.ps1 -PackageDir .\weir_package
    Turns on test signing, trusts the package's certificate, and tells you to reboot.

.NOTES
    Run from an elevated PowerShell (Run as administrator).
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [string] $PackageDir = '.',
    [string] $CertificatePath,
    [switch] $SkipTestSigning
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
# Native tools report failure through exit codes, which this script checks
# itself; keep PowerShell 7.4+ from turning them into errors first.
$PSNativeCommandUseErrorActionPreference = $false
# Read-only helpers shared with the other scripts (keep it next to this one).
Import-Module -Name (Join-Path $PSScriptRoot 'WeirCommon.psm1') -Force -DisableNameChecking

function Test-IsElevated {
    $identity = [Security.Principal.WindowsIdentity]::GetCurrent()
    $principal = New-Object Security.Principal.WindowsPrincipal($identity)
    return $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
}

if (-not (Test-IsElevated)) {
    throw 'Enable-TestSigning.ps1 must run elevated: open PowerShell with "Run as administrator" and try again.'
}

# --- Locate and load the certificate -------------------------------------

if (-not $CertificatePath) {
    # weir-test.cer (cargo xtask package) or WDRLocalTestCert.cer (cargo make);
    # throws, naming both, when the package has neither.
    $CertificatePath = Find-WeirTestCertificate -PackageDir $PackageDir
}
if (-not (Test-Path -LiteralPath $CertificatePath -PathType Leaf)) {
    throw "Test certificate not found: '$CertificatePath'. Pass -PackageDir <weir_package directory> or -CertificatePath <path to the package's .cer file>."
}
$CertificatePath = (Resolve-Path -LiteralPath $CertificatePath).ProviderPath

try {
    $certificate = New-Object System.Security.Cryptography.X509Certificates.X509Certificate2($CertificatePath)
}
catch {
    throw "Cannot read '$CertificatePath' as a certificate (expected DER-encoded X.509): $($_.Exception.Message)"
}
Write-Host "Certificate: $($certificate.Subject)"
Write-Host "  thumbprint $($certificate.Thumbprint), valid $($certificate.NotBefore) to $($certificate.NotAfter)"
if ($certificate.NotAfter -lt (Get-Date)) {
    Write-Warning "The test certificate expired on $($certificate.NotAfter). Windows may refuse the driver; rebuild the package with a fresh certificate."
}

# --- Secure Boot ----------------------------------------------------------

$secureBoot = $null
try {
    $secureBoot = Confirm-SecureBootUEFI
}
catch {
    # Legacy BIOS VMs (Hyper-V generation 1) have no Secure Boot at all.
    Write-Verbose "Secure Boot state unavailable: $($_.Exception.Message)"
}
if ($secureBoot -eq $true) {
    Write-Warning ('Secure Boot is ON. Windows ignores test signing while Secure Boot is on, and bcdedit ' +
        'will refuse to change it. Turn Secure Boot off in the VM firmware settings ' +
        '(Hyper-V: Settings > Security > clear "Enable Secure Boot"), then run this script again.')
}

# --- Test signing ---------------------------------------------------------

function Get-TestSigningConfigured {
    # The element name "testsigning" is not localized; its value is shown as
    # Yes/No (localized on some systems), so anything other than an explicit
    # Yes is treated as off and set again (setting it twice is harmless).
    $lines = & bcdedit.exe /enum '{current}'
    if ($LASTEXITCODE -ne 0) {
        throw "bcdedit /enum {current} failed with exit code $LASTEXITCODE. Is this an elevated prompt on a UEFI/BIOS boot entry?"
    }
    foreach ($line in $lines) {
        if ($line -match '^\s*testsigning\s+(\S+)') {
            return ($Matches[1] -eq 'Yes')
        }
    }
    return $false
}

function Get-TestSigningActive {
    # What the running kernel booted with (not what the next boot will use).
    $options = (Get-ItemProperty -Path 'HKLM:\SYSTEM\CurrentControlSet\Control' -Name SystemStartOptions).SystemStartOptions
    return ($options -match 'TESTSIGNING')
}

$rebootNeeded = $false
if ($SkipTestSigning) {
    Write-Host 'Test signing: left alone (-SkipTestSigning).'
}
elseif (Get-TestSigningConfigured) {
    Write-Host 'Test signing: already on in the boot configuration.'
}
else {
    if ($PSCmdlet.ShouldProcess('boot entry {current}', 'bcdedit /set testsigning on')) {
        $output = & bcdedit.exe /set testsigning on
        if ($LASTEXITCODE -ne 0) {
            $hint = ''
            if ($secureBoot -eq $true -or ($output -join ' ') -match 'Secure Boot') {
                $hint = ' Secure Boot is blocking it: turn Secure Boot off in the VM firmware settings first.'
            }
            throw "bcdedit /set testsigning on failed (exit code $LASTEXITCODE): $($output -join ' ').$hint"
        }
        Write-Host 'Test signing: turned on (bcdedit /set testsigning on).'
    }
}

if (-not $SkipTestSigning -and -not (Get-TestSigningActive)) {
    $rebootNeeded = $true
}

# --- Certificate stores ----------------------------------------------------

foreach ($store in @('Root', 'TrustedPublisher')) {
    $storePath = "Cert:\LocalMachine\$store"
    if (Test-Path -LiteralPath (Join-Path $storePath $certificate.Thumbprint)) {
        Write-Host "Certificate: already in $storePath."
        continue
    }
    if ($PSCmdlet.ShouldProcess($storePath, "Import-Certificate $CertificatePath")) {
        Import-Certificate -FilePath $CertificatePath -CertStoreLocation $storePath | Out-Null
        Write-Host "Certificate: imported into $storePath."
    }
}

# --- Summary ---------------------------------------------------------------

if ($rebootNeeded) {
    Write-Warning 'A reboot is needed before test signing takes effect (Restart-Computer). After it, the desktop shows "Test Mode" in the corner.'
}
elseif (-not $SkipTestSigning) {
    Write-Host 'Test signing is active in the running system; no reboot needed.'
}
