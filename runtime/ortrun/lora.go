package ortrun

import (
	"fmt"

	"github.com/bearrec/bear/onnx/llama"
	"github.com/bearrec/bear/onnx/peft"
)

// copyAdapter copies an adapter's matrices into a graph's LoRA buffers (by input name), converting
// to the compute type. graph is the spec the graph was built with (nil: built without LoRA).
func copyAdapter[T ComputeFloat](dst map[string][]T, inputs []llama.LoRAInputInfo, graph *llama.LoRASpec, a *peft.Adapter) error {
	if graph == nil {
		return fmt.Errorf("the graph was built without LoRA inputs")
	}
	if err := a.Matches(*graph); err != nil {
		return err
	}
	for _, in := range inputs {
		src, buf := a.Weights[in.Name], dst[in.Name]
		if len(src) != in.Rows*in.Cols || len(buf) != len(src) {
			return fmt.Errorf("adapter matrix %s has %d values, want %d", in.Name, len(src), in.Rows*in.Cols)
		}
		for i, v := range src {
			buf[i] = T(v)
		}
	}
	return nil
}
