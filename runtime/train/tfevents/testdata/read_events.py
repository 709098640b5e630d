#!/usr/bin/python3
"""Reads a TensorBoard event file independently of the Go package, for its tests.

usage: read_events.py FILE

Checks both masked CRC32C of every record (Debian's python3-crc32c) and decodes each record as
a tensorboard.Event with python3-protobuf, from message classes built at run time out of a
FileDescriptorProto assembled below with the field numbers of TensorBoard's published protos
(tensorboard/compat/proto/{event,summary,tensor,tensor_shape,types}.proto): no generated code.
Prints a JSON list of events {step, wall_time, file_version?, values: [{tag, plugin_name,
data_class, dtype, value, bits}]}. A value is the one float_val of a rank-0 tensor, as
TensorBoard's scalar summaries hold it: a float32, which protobuf hands over widened to a Python
float (a double) exactly. Floats are printed exactly: a finite one as its repr (the shortest
string that reads back to the same double), NaN and infinities as "nan", "inf", "-inf"; bits is
the IEEE 754 pattern of the double in hex, which also tells -0 from 0 and NaN payloads apart.
Any damage (short record, bad CRC, undecodable Event, a value that is not a rank-0 tensor with
exactly one float_val) is an error: exit status 1 with the reason on stderr.
"""

import json
import math
import struct
import sys

try:
    import crc32c
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
except ImportError as e:
    sys.exit("read_events.py: %s: run `make deps-tfevents` (python3-protobuf, python3-crc32c)" % e)

F = descriptor_pb2.FieldDescriptorProto


def masked_crc(data):
    c = crc32c.crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(buf):
    """Yields (offset, data) for each record; anything short or with a bad CRC is fatal."""
    off = 0
    while off < len(buf):
        if len(buf) - off < 12:
            raise ValueError("byte %d: %d bytes left, short record header" % (off, len(buf) - off))
        header = buf[off:off + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", buf[off + 8:off + 12])
        if masked_crc(header) != length_crc:
            raise ValueError("byte %d: bad length CRC" % off)
        end = off + 12 + length + 4
        if end > len(buf):
            raise ValueError("byte %d: record of %d bytes runs past the end" % (off, length))
        data = buf[off + 12:off + 12 + length]
        (data_crc,) = struct.unpack("<I", buf[end - 4:end])
        if masked_crc(data) != data_crc:
            raise ValueError("byte %d: bad data CRC" % off)
        yield off, data
        off = end


def message(name, fields, nested=(), oneofs=()):
    """A DescriptorProto; fields are (name, number, type, label, type_name, oneof index)."""
    m = descriptor_pb2.DescriptorProto(name=name)
    for fname, number, ftype, label, type_name, oneof in fields:
        f = m.field.add(name=fname, number=number, type=ftype, label=label)
        if type_name:
            f.type_name = type_name
        if oneof is not None:
            f.oneof_index = oneof
    m.nested_type.extend(nested)
    for o in oneofs:
        m.oneof_decl.add(name=o)
    return m


def build_classes():
    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    fdp = descriptor_pb2.FileDescriptorProto(
        name="read_events/tensorboard.proto", package="tensorboard", syntax="proto3")

    # types.proto: enum DataType (the values this reader names; proto3 enums stay open).
    dt = fdp.enum_type.add(name="DataType")
    for name, number in (("DT_INVALID", 0), ("DT_FLOAT", 1), ("DT_DOUBLE", 2)):
        dt.value.add(name=name, number=number)
    # summary.proto: enum DataClass.
    dc = fdp.enum_type.add(name="DataClass")
    for name, number in (("DATA_CLASS_UNKNOWN", 0), ("DATA_CLASS_SCALAR", 1),
                         ("DATA_CLASS_TENSOR", 2), ("DATA_CLASS_BLOB_SEQUENCE", 3)):
        dc.value.add(name=name, number=number)

    # tensor_shape.proto
    dim = message("Dim", [
        ("size", 1, F.TYPE_INT64, opt, None, None),
        ("name", 2, F.TYPE_STRING, opt, None, None)])
    shape = message("TensorShapeProto", [
        ("dim", 2, F.TYPE_MESSAGE, rep, ".tensorboard.TensorShapeProto.Dim", None),
        ("unknown_rank", 3, F.TYPE_BOOL, opt, None, None)], nested=[dim])
    # tensor.proto (repeated scalars of proto3 are packed by default, as declared there)
    tensor = message("TensorProto", [
        ("dtype", 1, F.TYPE_ENUM, opt, ".tensorboard.DataType", None),
        ("tensor_shape", 2, F.TYPE_MESSAGE, opt, ".tensorboard.TensorShapeProto", None),
        ("version_number", 3, F.TYPE_INT32, opt, None, None),
        ("tensor_content", 4, F.TYPE_BYTES, opt, None, None),
        ("float_val", 5, F.TYPE_FLOAT, rep, None, None),
        ("double_val", 6, F.TYPE_DOUBLE, rep, None, None)])
    # summary.proto
    plugin_data = message("PluginData", [
        ("plugin_name", 1, F.TYPE_STRING, opt, None, None),
        ("content", 2, F.TYPE_BYTES, opt, None, None)])
    metadata = message("SummaryMetadata", [
        ("plugin_data", 1, F.TYPE_MESSAGE, opt, ".tensorboard.SummaryMetadata.PluginData", None),
        ("display_name", 2, F.TYPE_STRING, opt, None, None),
        ("summary_description", 3, F.TYPE_STRING, opt, None, None),
        ("data_class", 4, F.TYPE_ENUM, opt, ".tensorboard.DataClass", None)],
        nested=[plugin_data])
    value = message("Value", [
        ("tag", 1, F.TYPE_STRING, opt, None, None),
        ("simple_value", 2, F.TYPE_FLOAT, opt, None, 0),
        ("obsolete_old_style_histogram", 3, F.TYPE_BYTES, opt, None, 0),
        ("tensor", 8, F.TYPE_MESSAGE, opt, ".tensorboard.TensorProto", 0),
        ("node_name", 7, F.TYPE_STRING, opt, None, None),
        ("metadata", 9, F.TYPE_MESSAGE, opt, ".tensorboard.SummaryMetadata", None)],
        oneofs=["value"])
    summary = message("Summary", [
        ("value", 1, F.TYPE_MESSAGE, rep, ".tensorboard.Summary.Value", None)], nested=[value])
    # event.proto
    event = message("Event", [
        ("wall_time", 1, F.TYPE_DOUBLE, opt, None, None),
        ("step", 2, F.TYPE_INT64, opt, None, None),
        ("file_version", 3, F.TYPE_STRING, opt, None, 0),
        ("graph_def", 4, F.TYPE_BYTES, opt, None, 0),
        ("summary", 5, F.TYPE_MESSAGE, opt, ".tensorboard.Summary", 0),
        ("meta_graph_def", 9, F.TYPE_BYTES, opt, None, 0)],
        oneofs=["what"])
    fdp.message_type.extend([shape, tensor, metadata, summary, event])

    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    desc = pool.FindMessageTypeByName("tensorboard.Event")
    if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.22
        return message_factory.GetMessageClass(desc), pool
    return message_factory.MessageFactory(pool).GetPrototype(desc), pool


def exact(x):
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x  # json writes repr(x): exact


def bits(x):
    return "%016x" % struct.unpack("<Q", struct.pack("<d", x))[0]


def scalar(v, names):
    if v.WhichOneof("value") != "tensor":
        raise ValueError("value %r holds %s, not a tensor" % (v.tag, v.WhichOneof("value")))
    t = v.tensor
    if len(t.tensor_shape.dim) or t.tensor_shape.unknown_rank:
        raise ValueError("value %r: tensor not of rank 0" % v.tag)
    if len(t.float_val) != 1 or len(t.double_val) or t.tensor_content:
        raise ValueError("value %r: want exactly one float_val" % v.tag)
    x = t.float_val[0]
    return {
        "tag": v.tag,
        "plugin_name": v.metadata.plugin_data.plugin_name,
        "data_class": names["DataClass"].get(v.metadata.data_class, str(v.metadata.data_class)),
        "dtype": names["DataType"].get(t.dtype, str(t.dtype)),
        "value": exact(x),
        "bits": bits(x),
    }


def main(path):
    Event, pool = build_classes()
    names = {enum: {v.number: v.name for v in pool.FindEnumTypeByName("tensorboard." + enum).values}
             for enum in ("DataType", "DataClass")}
    with open(path, "rb") as f:
        buf = f.read()
    out = []
    for off, data in records(buf):
        ev = Event()
        try:
            ev.ParseFromString(data)
        except Exception as e:
            raise ValueError("byte %d: not an Event: %s" % (off, e))
        item = {"step": ev.step, "wall_time": exact(ev.wall_time), "wall_time_bits": bits(ev.wall_time)}
        what = ev.WhichOneof("what")
        if what == "file_version":
            item["file_version"] = ev.file_version
        elif what == "summary":
            try:
                item["values"] = [scalar(v, names) for v in ev.summary.value]
            except ValueError as e:
                raise ValueError("byte %d: %s" % (off, e))
        else:
            raise ValueError("byte %d: Event of kind %s" % (off, what))
        if not out and what != "file_version":
            raise ValueError("the first record is no file_version event")
        out.append(item)
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    try:
        main(sys.argv[1])
    except (ValueError, OSError) as e:
        sys.exit("read_events.py: %s: %s" % (sys.argv[1], e))
