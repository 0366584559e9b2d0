//! Pins every struct this crate declares, and the `windows-sys` management
//! structs Weir passes to the engine, to the documented x64 layout.
//!
//! The host tests run on x86_64, whose C layout rules for these types (LLP64
//! and LP64 agree once `ULONG` is spelled `u32`) are the Windows x64 ones.

use crate::fwps::*;
use core::mem::{align_of, offset_of, size_of};
use windows_sys::Win32::NetworkManagement::WindowsFilteringPlatform::{
    FWPM_CALLOUT0, FWPM_FILTER0, FWPM_FILTER_CONDITION0, FWPM_PROVIDER0, FWPM_SESSION0, FWPM_SUBLAYER0,
    FWP_CONDITION_VALUE0, FWP_VALUE0,
};

macro_rules! assert_layout {
    ($ty:ty, size = $size:expr, align = $align:expr, { $($field:ident = $off:expr),* $(,)? }) => {{
        assert_eq!(size_of::<$ty>(), $size, concat!("size of ", stringify!($ty)));
        assert_eq!(align_of::<$ty>(), $align, concat!("alignment of ", stringify!($ty)));
        $(assert_eq!(offset_of!($ty, $field), $off,
            concat!("offset of ", stringify!($ty), "::", stringify!($field)));)*
    }};
}

#[test]
fn fwps_incoming_value0() {
    assert_layout!(FWPS_INCOMING_VALUE0, size = 16, align = 8, { value = 0 });
    assert_layout!(FWP_VALUE0, size = 16, align = 8, { r#type = 0, Anonymous = 8 });
}

#[test]
fn fwps_incoming_values0() {
    assert_layout!(FWPS_INCOMING_VALUES0, size = 16, align = 8, {
        layerId = 0, valueCount = 4, incomingValue = 8,
    });
}

#[test]
fn fwps_discard_and_fragment_metadata0() {
    assert_layout!(FWPS_DISCARD_METADATA0, size = 16, align = 8, {
        discardModule = 0, discardReason = 4, filterId = 8,
    });
    assert_layout!(FWPS_INBOUND_FRAGMENT_METADATA0, size = 12, align = 4, {
        fragmentIdentification = 0, fragmentOffset = 4, fragmentLength = 8,
    });
}

#[test]
fn fwps_incoming_metadata_values0_prefix() {
    assert_layout!(FWPS_INCOMING_METADATA_VALUES0, size = 144, align = 8, {
        currentMetadataValues = 0, flags = 4, reserved = 8, discardMetadata = 16,
        flowHandle = 32, ipHeaderSize = 40, transportHeaderSize = 44, processPath = 48,
        token = 56, processId = 64, sourceInterfaceIndex = 72, destinationInterfaceIndex = 76,
        compartmentId = 80, fragmentMetadata = 84, pathMtu = 96, completionHandle = 104,
        transportEndpointHandle = 112, remoteScopeId = 120, controlData = 128,
        controlDataLength = 136, packetDirection = 140,
    });
}

#[test]
fn fwps_action0_and_filter_condition0() {
    assert_layout!(FWPS_ACTION0, size = 8, align = 4, { r#type = 0, calloutId = 4 });
    assert_layout!(FWPS_FILTER_CONDITION0, size = 24, align = 8, {
        fieldId = 0, reserved = 2, matchType = 4, conditionValue = 8,
    });
}

#[test]
fn fwps_filter3() {
    assert_layout!(FWPS_FILTER3, size = 64, align = 8, {
        filterId = 0, weight = 8, subLayerWeight = 24, flags = 26, numFilterConditions = 28,
        filterCondition = 32, action = 40, context = 48, providerContext = 56,
    });
}

#[test]
fn fwps_classify_out0() {
    assert_layout!(FWPS_CLASSIFY_OUT0, size = 40, align = 8, {
        actionType = 0, outContext = 8, filterId = 16, rights = 24, flags = 28, reserved = 32,
    });
}

#[test]
fn fwps_callout3() {
    assert_layout!(FWPS_CALLOUT3, size = 48, align = 8, {
        calloutKey = 0, flags = 16, classifyFn = 24, notifyFn = 32, flowDeleteFn = 40,
    });
}

/// The management structs come from windows-sys; the emulation harness
/// decodes them at these offsets, so a windows-sys change must fail here.
#[test]
fn fwpm_structs_from_windows_sys() {
    assert_layout!(FWPM_SESSION0, size = 72, align = 8, {
        sessionKey = 0, displayData = 16, flags = 32, txnWaitTimeoutInMSec = 36,
        processId = 40, sid = 48, username = 56, kernelMode = 64,
    });
    assert_layout!(FWPM_SUBLAYER0, size = 72, align = 8, {
        subLayerKey = 0, displayData = 16, flags = 32, providerKey = 40, providerData = 48,
        weight = 64,
    });
    assert_layout!(FWPM_CALLOUT0, size = 88, align = 8, {
        calloutKey = 0, displayData = 16, flags = 32, providerKey = 40, providerData = 48,
        applicableLayer = 64, calloutId = 80,
    });
    assert_layout!(FWPM_FILTER0, size = 200, align = 8, {
        filterKey = 0, displayData = 16, flags = 32, providerKey = 40, providerData = 48,
        layerKey = 64, subLayerKey = 80, weight = 96, numFilterConditions = 112,
        filterCondition = 120, action = 128, Anonymous = 152, reserved = 168, filterId = 176,
        effectiveWeight = 184,
    });
    // The fail-closed set (wfp-km failsafe); tests/emulation/store_model.py decodes these offsets.
    assert_layout!(FWPM_PROVIDER0, size = 64, align = 8, {
        providerKey = 0, displayData = 16, flags = 32, providerData = 40, serviceName = 56,
    });
    assert_layout!(FWPM_FILTER_CONDITION0, size = 40, align = 8, { fieldKey = 0, matchType = 16, conditionValue = 24 });
    assert_layout!(FWP_CONDITION_VALUE0, size = 16, align = 8, { r#type = 0, Anonymous = 8 });
}

#[test]
fn layer_ids_are_distinct_and_paired() {
    // V6 layers directly follow their V4 layer's discard twin.
    assert_eq!(FWPS_LAYER_ALE_AUTH_CONNECT_V6, FWPS_LAYER_ALE_AUTH_CONNECT_V4 + 2);
    assert_eq!(FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V6, FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V4 + 2);
    assert_eq!(FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V4, FWPS_LAYER_ALE_AUTH_LISTEN_V4 + 4);
}

#[test]
fn metadata_field_bits() {
    // Documented values (fwpstypes.h); 0x40 is SYSTEM_FLAGS, not PROCESS_ID.
    assert_eq!(FWPS_METADATA_FIELD_PROCESS_ID, 0x20);
    assert_eq!(FWPS_METADATA_FIELD_TOKEN, 0x10);
    assert_eq!(FWPS_METADATA_FIELD_PROCESS_PATH, 0x08);
    assert_eq!(FWPS_METADATA_FIELD_TRANSPORT_HEADER_SIZE, 0x400);
}

/// The IRP fields Weir's dispatch code reads (windows-sys types), and the
/// padded DeviceIoControl parameters it reads instead of windows-sys' own.
#[test]
fn irp_and_stack_location() {
    use crate::ntos::DEVICE_IO_CONTROL_PARAMETERS;
    use windows_sys::Wdk::Foundation::{IO_STACK_LOCATION, IRP};
    assert_eq!(offset_of!(IRP, AssociatedIrp), 0x18);
    assert_eq!(offset_of!(IRP, IoStatus), 0x30);
    assert_eq!(offset_of!(IRP, Tail), 0x78);
    // Tail.Overlay.CurrentStackLocation at IRP + 0xB8.
    assert_eq!(offset_of!(IRP, Tail) + 0x40, 0xB8);
    assert_eq!(offset_of!(IO_STACK_LOCATION, MajorFunction), 0);
    assert_eq!(offset_of!(IO_STACK_LOCATION, Parameters), 8);
    assert_eq!(size_of::<IO_STACK_LOCATION>(), 0x48);
    assert_layout!(DEVICE_IO_CONTROL_PARAMETERS, size = 32, align = 8, {
        OutputBufferLength = 0, InputBufferLength = 8, IoControlCode = 16, Type3InputBuffer = 24,
    });
    // The union is large enough to read the padded view from.
    assert!(8 + size_of::<DEVICE_IO_CONTROL_PARAMETERS>() <= offset_of!(IO_STACK_LOCATION, DeviceObject));
}

#[test]
fn etw_descriptors() {
    use crate::etw::*;
    assert_layout!(EVENT_DESCRIPTOR, size = 16, align = 8, {
        Id = 0, Version = 2, Channel = 3, Level = 4, Opcode = 5, Task = 6, Keyword = 8,
    });
    assert_layout!(EVENT_DATA_DESCRIPTOR, size = 16, align = 8, { Ptr = 0, Size = 8, Reserved = 12 });
    assert_layout!(EVENT_FILTER_DESCRIPTOR, size = 16, align = 8, { Ptr = 0, Size = 8, Type = 12 });
    assert_eq!(size_of::<REGHANDLE>(), 8);
}

#[test]
fn file_structs() {
    use crate::ntos::{FILE_STANDARD_INFORMATION, IO_STATUS_BLOCK};
    assert_layout!(FILE_STANDARD_INFORMATION, size = 24, align = 8, {
        AllocationSize = 0, EndOfFile = 8, NumberOfLinks = 16, DeletePending = 20, Directory = 21,
    });
    assert_layout!(IO_STATUS_BLOCK, size = 16, align = 8, { Anonymous = 0, Information = 8 });
}
