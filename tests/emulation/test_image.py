"""What the emulation relies on in the image itself (no emulation)."""

import pefile
import pytest

import harness
from kernel_model import KernelModel

ALLOWED_MODULES = {"ntoskrnl.exe", "fwpkclnt.sys", "hal.dll"}


@pytest.fixture(scope="module")
def image():
    path = harness.image_path()
    if not path.is_file():
        pytest.fail(f"driver image {path} does not exist: run `cargo xtask build` or set WEIR_IMAGE")
    return path


def test_image_imports_only_kernel_modules(image):
    imports = harness.image_imports(image)
    foreign = sorted(set(imports) - ALLOWED_MODULES)
    assert not foreign, f"import table names non-kernel modules {foreign}; allowed: {sorted(ALLOWED_MODULES)}"
    assert "ntoskrnl.exe" in imports and "fwpkclnt.sys" in imports, f"expected ntoskrnl.exe and fwpkclnt.sys imports, got {sorted(imports)}"


def test_every_import_has_a_kernel_model_hook(image):
    table = KernelModel().hook_table()
    missing = [f"{dll}!{name}" for dll, names in harness.image_imports(image).items()
               for name in names if (dll.rsplit(".", 1)[0], name) not in table]
    assert not missing, f"imports without a kernel-model hook (add one in kernel_model.py): {missing}"


def test_entry_point_is_the_exported_driver_entry(image):
    pe = pefile.PE(str(image))
    try:
        assert pe.FILE_HEADER.Machine == 0x8664, f"machine {pe.FILE_HEADER.Machine:#x}, expected AMD64"
        assert pe.OPTIONAL_HEADER.Subsystem == 1, f"subsystem {pe.OPTIONAL_HEADER.Subsystem}, expected NATIVE (1)"
        exports = {e.name.decode(): e.address for e in pe.DIRECTORY_ENTRY_EXPORT.symbols if e.name}
        assert "DriverEntry" in exports, f"exports {sorted(exports)} lack DriverEntry"
        assert pe.OPTIONAL_HEADER.AddressOfEntryPoint == exports["DriverEntry"], (
            f"entry point RVA {pe.OPTIONAL_HEADER.AddressOfEntryPoint:#x} is not DriverEntry's {exports['DriverEntry']:#x}"
        )
    finally:
        pe.close()
