package tfevents

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of TensorBoard's protos (tensorboard/compat/proto/*.proto), for the fields this
// package writes or reads; every other field is skipped when reading.
const (
	eventWallTime    = 1 // Event.wall_time, double (event.proto)
	eventStep        = 2 // Event.step, int64
	eventFileVersion = 3 // Event.file_version, string (oneof what)
	eventSummary     = 5 // Event.summary, Summary (oneof what)

	summaryValue = 1 // Summary.value, repeated Summary.Value (summary.proto)

	valueTag         = 1 // Summary.Value.tag, string
	valueSimpleValue = 2 // Summary.Value.simple_value, float (oneof value)
	valueTensor      = 8 // Summary.Value.tensor, TensorProto (oneof value)
	valueMetadata    = 9 // Summary.Value.metadata, SummaryMetadata

	metadataPluginData = 1 // SummaryMetadata.plugin_data, PluginData
	metadataDataClass  = 4 // SummaryMetadata.data_class, DataClass
	pluginDataName     = 1 // SummaryMetadata.PluginData.plugin_name, string

	tensorDtype     = 1 // TensorProto.dtype, DataType (tensor.proto)
	tensorShape     = 2 // TensorProto.tensor_shape, TensorShapeProto
	tensorContent   = 4 // TensorProto.tensor_content, bytes
	tensorFloatVal  = 5 // TensorProto.float_val, repeated float [packed = true]
	tensorDoubleVal = 6 // TensorProto.double_val, repeated double [packed = true]

	shapeDim         = 2 // TensorShapeProto.dim, repeated Dim (tensor_shape.proto)
	shapeUnknownRank = 3 // TensorShapeProto.unknown_rank, bool

	dtFloat  = 1 // DataType.DT_FLOAT (types.proto)
	dtDouble = 2 // DataType.DT_DOUBLE

	dataClassScalar = 1 // DataClass.DATA_CLASS_SCALAR (summary.proto)
)

// fileVersion starts every event file; TensorBoard's readers check the "brain.Event:" prefix.
const fileVersion = "brain.Event:2"

// scalarsPlugin routes a value to TensorBoard's scalar dashboard.
const scalarsPlugin = "scalars"

func fileVersionEvent(wall float64) []byte {
	b := protowire.AppendTag(nil, eventWallTime, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(wall))
	b = protowire.AppendTag(b, eventFileVersion, protowire.BytesType)
	return protowire.AppendString(b, fileVersion)
}

func scalarsEvent(step int64, wall float64, values []Scalar) []byte {
	var summary []byte
	for _, v := range values {
		summary = appendMessage(summary, summaryValue, scalarValue(v))
	}
	b := protowire.AppendTag(nil, eventWallTime, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(wall))
	b = protowire.AppendTag(b, eventStep, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(step))
	return appendMessage(b, eventSummary, summary)
}

// scalarValue is a Summary.Value holding v as TensorBoard's own scalar summary holds it
// (tensorboard/plugins/scalar/summary_v2.py): a rank-0 DT_FLOAT tensor (an empty tensor_shape
// is rank 0) with one packed float_val, and metadata of the "scalars" plugin and class
// DATA_CLASS_SCALAR. The fields come in field-number order, as protobuf serializers write them.
// The value must have passed checkScalars.
func scalarValue(v Scalar) []byte {
	f, _ := toFloat32(v.Value)
	tensor := protowire.AppendTag(nil, tensorDtype, protowire.VarintType)
	tensor = protowire.AppendVarint(tensor, dtFloat)
	tensor = appendMessage(tensor, tensorShape, nil)
	tensor = appendMessage(tensor, tensorFloatVal, protowire.AppendFixed32(nil, math.Float32bits(f)))

	plugin := protowire.AppendTag(nil, pluginDataName, protowire.BytesType)
	plugin = protowire.AppendString(plugin, scalarsPlugin)
	metadata := appendMessage(nil, metadataPluginData, plugin)
	metadata = protowire.AppendTag(metadata, metadataDataClass, protowire.VarintType)
	metadata = protowire.AppendVarint(metadata, dataClassScalar)

	b := protowire.AppendTag(nil, valueTag, protowire.BytesType)
	b = protowire.AppendString(b, v.Tag)
	b = appendMessage(b, valueTensor, tensor)
	return appendMessage(b, valueMetadata, metadata)
}

// canonicalNaN is the float32 quiet NaN that every NaN is stored as, so that a file's bytes do
// not depend on how the machine narrows a NaN's payload.
const canonicalNaN = 0x7fc00000

// toFloat32 is x as it is stored: rounded to the nearest float32, ties to even (Go's conversion,
// as numpy's astype(np.float32) in TensorBoard's writer). ±Inf and -0 stay as they are, a value
// below float32's range becomes ±0, and any NaN becomes canonicalNaN. ok is false when a finite
// x is too large for float32, so that it would round to ±Inf.
func toFloat32(x float64) (f float32, ok bool) {
	if math.IsNaN(x) {
		return math.Float32frombits(canonicalNaN), true
	}
	f = float32(x)
	return f, !math.IsInf(float64(f), 0) || math.IsInf(x, 0)
}

func appendMessage(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

// field is one decoded field: u holds a varint or fixed value, b a length-delimited one.
type field struct {
	num protowire.Number
	typ protowire.Type
	u   uint64
	b   []byte
}

// eachField calls visit for the fields of a message in order, skipping none; visit ignores the
// ones it does not know, as protobuf parsers do.
func eachField(b []byte, visit func(field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.u, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			f.u, n = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var u uint32
			u, n = protowire.ConsumeFixed32(b)
			f.u = uint64(u)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := visit(f); err != nil {
			return err
		}
	}
	return nil
}

// rawEvent is what Open and Read need of an Event: the summary stays encoded until Read asks.
type rawEvent struct {
	wall           float64
	step           int64
	fileVersion    string
	hasFileVersion bool
	summary        []byte
	hasSummary     bool
}

func decodeEvent(b []byte) (ev rawEvent, err error) {
	err = eachField(b, func(f field) error {
		switch {
		case f.num == eventWallTime && f.typ == protowire.Fixed64Type:
			ev.wall = math.Float64frombits(f.u)
		case f.num == eventStep && f.typ == protowire.VarintType:
			ev.step = int64(f.u)
		case f.num == eventFileVersion && f.typ == protowire.BytesType:
			ev.fileVersion, ev.hasFileVersion = string(f.b), true
		case f.num == eventSummary && f.typ == protowire.BytesType:
			ev.summary, ev.hasSummary = f.b, true
		}
		return nil
	})
	return ev, err
}

func decodeSummary(b []byte) (values []Scalar, err error) {
	err = eachField(b, func(f field) error {
		if f.num != summaryValue || f.typ != protowire.BytesType {
			return nil
		}
		v, err := decodeValue(f.b)
		values = append(values, v)
		return err
	})
	return values, err
}

// decodeValue reads a scalar as this package writes it, a scalar tensor of another writer (see
// decodeTensor) or a TensorFlow 1 simple_value (a float32); any other kind of value is an error,
// not a silently missing curve.
func decodeValue(b []byte) (v Scalar, err error) {
	found := false
	err = eachField(b, func(f field) error {
		var err error
		switch {
		case f.num == valueTag && f.typ == protowire.BytesType:
			v.Tag = string(f.b)
		case f.num == valueSimpleValue && f.typ == protowire.Fixed32Type:
			v.Value, found = float64(math.Float32frombits(uint32(f.u))), true
		case f.num == valueTensor && f.typ == protowire.BytesType:
			v.Value, err = decodeTensor(f.b)
			found = true
		}
		return err
	})
	if err == nil && !found {
		err = errors.New("no simple_value or tensor")
	}
	if err != nil {
		return v, fmt.Errorf("value %q: %w", v.Tag, err)
	}
	return v, nil
}

// decodeTensor reads a rank-0 tensor holding one value: of DT_FLOAT in float_val (as this
// package and TensorBoard write it), of DT_DOUBLE in double_val (as this package's first version
// wrote it), or of either in tensor_content (little-endian, as TensorFlow's summary ops write
// it). A float32 comes back widened to float64, exactly. Repeated values may come packed or not,
// as protobuf parsers must accept both.
func decodeTensor(b []byte) (float64, error) {
	var dtype uint64
	var floats, doubles, content []byte // little-endian float32s, float64s, tensor_content
	err := eachField(b, func(f field) error {
		switch {
		case f.num == tensorDtype && f.typ == protowire.VarintType:
			dtype = f.u
		case f.num == tensorShape && f.typ == protowire.BytesType:
			return checkRank0(f.b)
		case f.num == tensorContent && f.typ == protowire.BytesType:
			content = f.b // a bytes field: the last one counts
		case f.num == tensorFloatVal && f.typ == protowire.Fixed32Type:
			floats = protowire.AppendFixed32(floats, uint32(f.u))
		case f.num == tensorFloatVal && f.typ == protowire.BytesType:
			floats = append(floats, f.b...)
		case f.num == tensorDoubleVal && f.typ == protowire.Fixed64Type:
			doubles = protowire.AppendFixed64(doubles, f.u)
		case f.num == tensorDoubleVal && f.typ == protowire.BytesType:
			doubles = append(doubles, f.b...)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	var vals []byte
	var size int
	switch dtype {
	case dtFloat:
		vals, size = floats, 4
	case dtDouble:
		vals, size = doubles, 8
	default:
		return 0, fmt.Errorf("tensor of dtype %d, want DT_FLOAT (%d) or DT_DOUBLE (%d)", dtype, dtFloat, dtDouble)
	}
	if len(vals) == 0 {
		vals = content
	} else if len(content) > 0 {
		return 0, errors.New("tensor with both typed values and tensor_content")
	}
	switch {
	case len(vals)%size != 0:
		return 0, fmt.Errorf("tensor values of %d bytes, not a whole number of %d-byte values", len(vals), size)
	case len(vals) != size:
		return 0, fmt.Errorf("tensor of %d values, want 1", len(vals)/size)
	}
	if size == 4 {
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(vals))), nil
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(vals)), nil
}

func checkRank0(b []byte) error {
	return eachField(b, func(f field) error {
		if f.num == shapeDim || (f.num == shapeUnknownRank && f.u != 0) {
			return errors.New("tensor not of rank 0")
		}
		return nil
	})
}
