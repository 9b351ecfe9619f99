using System;
using System.Runtime.InteropServices;

namespace Shardwise.Distributed.Native;

/// <summary>
/// Open MPI 4's <c>struct ompi_status_public_t</c> (mpi.h): three public ints, then two internal fields that only
/// give the struct its size (24 bytes on x86-64), which MPI writes through the pointer we pass.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct MpiStatus
{
    public int Source;
    public int Tag;
    public int Error;
    private int _cancelled;
    private nuint _ucount;
}
