/*
 * Test-only stand-in for bcryptprimitives.dll, which Wine 8 does not ship.
 *
 * Rust's std on Windows imports ProcessPrng from bcryptprimitives.dll (its
 * random source for HashMap keys). Windows 10 and later have it; Wine 8 does
 * not, so weirctl.exe would not start under Wine. `cargo xtask test` builds
 * this file with mingw-w64 next to a *copy* of weirctl.exe in
 * target/wine-test/. It is never part of the package.
 *
 * ProcessPrng (learn.microsoft.com, seccng/processprng): BOOL ProcessPrng(PBYTE pbData,
 * SIZE_T cbData), always TRUE. RtlGenRandom (advapi32!SystemFunction036)
 * fills the bytes here; it takes a ULONG length, so larger requests go in chunks.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
