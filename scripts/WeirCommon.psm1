<#
.SYNOPSIS
    Read-only helpers shared by the Weir test-VM scripts.

.DESCRIPTION
    Imported by Enable-TestSigning.ps1, Install-Weir.ps1, Stage-Weir.ps1 and
    Uninstall-Weir.ps1 from the same directory. Nothing here changes the
    machine: it only parses command output, reads the service state and looks
    for files. Keep this file next to the scripts.
    Untested on real Windows by our CI - only statically checked.
#>

Set-StrictMode -Version Latest

function ConvertFrom-WeirEnumDrivers {
    <#
    .SYNOPSIS
        Published names (oemNN.inf) of driver-store packages whose original
        name is weir.inf, from the text of pnputil /enum-drivers.
    .DESCRIPTION
        pnputil's labels are localized, so each blank-line separated record is
        matched on its values: one that looks like oemNN.inf and one that
        equals weir.inf.
    .PARAMETER Text
        The lines pnputil /enum-drivers printed.
    #>
    [CmdletBinding()]
    param(
        [AllowEmptyCollection()]
        [AllowEmptyString()]
        [string[]] $Text = @()
    )
    $names = New-Object System.Collections.Generic.List[string]
    $record = New-Object System.Collections.Generic.List[string]
    foreach ($line in @($Text) + @('')) {
        if ($line -match '^\s*$') {
            $values = @($record | ForEach-Object { ($_ -split ':', 2)[-1].Trim() })
            $published = @($values | Where-Object { $_ -match '^oem\d+\.inf$' })
            if ($published.Count -gt 0 -and ($values -contains 'weir.inf')) {
                $names.Add($published[0].ToLowerInvariant())
            }
            $record.Clear()
        }
        else {
            $record.Add($line)
        }
    }
    return @($names | Sort-Object -Unique)
}

function Get-WeirServiceState {
    <#
    .SYNOPSIS
        'Absent', or the WMI state of the kernel service: Running, Stopped,
        Stop Pending, Start Pending...
    .PARAMETER Name
        The service name.
    #>
    [CmdletBinding()]
    param([string] $Name = 'weir')
    $driver = Get-CimInstance -ClassName Win32_SystemDriver -Filter "Name='$Name'" -ErrorAction SilentlyContinue
    if ($null -eq $driver) { return 'Absent' }
    return [string]$driver.State
}

function Find-WeirTestCertificate {
    <#
    .SYNOPSIS
        Full path of the test certificate in a Weir driver package.
    .DESCRIPTION
        A package built on Linux (cargo xtask package) carries weir-test.cer;
        one built with the WDK (cargo make, windows-drivers-rs) carries
        WDRLocalTestCert.cer, the certificate its makecert task creates.
        Returns the first of these two that exists in PackageDir, preferring
        weir-test.cer; throws if neither does.
    .PARAMETER PackageDir
        The weir_package directory.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory)] [string] $PackageDir)
    $names = @('weir-test.cer', 'WDRLocalTestCert.cer')
    foreach ($name in $names) {
        $path = Join-Path $PackageDir $name
        if (Test-Path -LiteralPath $path -PathType Leaf) {
            return $path
        }
    }
    throw ("No test certificate in '$PackageDir': expected weir-test.cer (cargo xtask package) or " +
        'WDRLocalTestCert.cer (cargo make). Pass the weir_package directory of a complete package.')
}

Export-ModuleMember -Function 'ConvertFrom-WeirEnumDrivers', 'Get-WeirServiceState', 'Find-WeirTestCertificate'
