/* Wine 8.0 (Debian 12) lacks bcryptprimitives.dll!ProcessPrng, which Rust's std imports on
 * Windows since 1.78: without it every Rust .exe exits at once (status 53, no output). Built
 * with mingw and put beside the .exe under test, this DLL answers it with RtlGenRandom, which
 * Wine has. Real Windows (10 and later) has the function itself and never loads this. */
#include <windows.h>
#define SystemFunction036 NTAPI SystemFunction036
#include <ntsecapi.h>
#undef SystemFunction036
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
  return RtlGenRandom(data, (ULONG)len);
}
