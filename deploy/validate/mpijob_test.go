package validate

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// mpiJob is the part of the Kubeflow MPI Operator's kubeflow.org/v2beta1 MPIJob that a manifest
// writes (the spec; status belongs to the operator), written here from the operator's published
// API (pkg/apis/kubeflow/v2beta1/types.go). Its Go module is not on the module proxy, and it pins
// another Kubernetes release than k8s.io/api here. A field this type lacks fails the strict
// decoding: add it only if the operator's API has it.
type mpiJob struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              mpiJobSpec `json:"spec"`
}

type mpiJobSpec struct {
	SlotsPerWorker         *int32                     `json:"slotsPerWorker,omitempty"` // the operator's default: 1
	RunLauncherAsWorker    *bool                      `json:"runLauncherAsWorker,omitempty"`
	RunPolicy              mpiRunPolicy               `json:"runPolicy,omitempty"`
	MPIReplicaSpecs        map[string]*mpiReplicaSpec `json:"mpiReplicaSpecs"` // keys Launcher, Worker
	SSHAuthMountPath       string                     `json:"sshAuthMountPath,omitempty"`
	LauncherCreationPolicy string                     `json:"launcherCreationPolicy,omitempty"` // AtStartup, WaitForWorkersReady
	MPIImplementation      string                     `json:"mpiImplementation,omitempty"`      // OpenMPI, Intel, MPICH
}

type mpiRunPolicy struct {
	CleanPodPolicy          *string              `json:"cleanPodPolicy,omitempty"` // All, Running, None
	TTLSecondsAfterFinished *int32               `json:"ttlSecondsAfterFinished,omitempty"`
	ActiveDeadlineSeconds   *int64               `json:"activeDeadlineSeconds,omitempty"`
	BackoffLimit            *int32               `json:"backoffLimit,omitempty"`
	SchedulingPolicy        *mpiSchedulingPolicy `json:"schedulingPolicy,omitempty"`
	Suspend                 *bool                `json:"suspend,omitempty"`
	ManagedBy               *string              `json:"managedBy,omitempty"`
}

type mpiSchedulingPolicy struct {
	MinAvailable           *int32               `json:"minAvailable,omitempty"`
	Queue                  string               `json:"queue,omitempty"`
	MinResources           *corev1.ResourceList `json:"minResources,omitempty"`
	PriorityClass          string               `json:"priorityClass,omitempty"`
	ScheduleTimeoutSeconds *int32               `json:"scheduleTimeoutSeconds,omitempty"`
}

type mpiReplicaSpec struct {
	Replicas      *int32                 `json:"replicas,omitempty"`
	Template      corev1.PodTemplateSpec `json:"template,omitempty"`
	RestartPolicy string                 `json:"restartPolicy,omitempty"` // Always, OnFailure, Never, ExitCode
}

// Enumerations of the operator's API that a typo would otherwise slip through as a plain string.
var mpiEnums = map[string][]string{
	"cleanPodPolicy":         {"All", "Running", "None"},
	"launcherCreationPolicy": {"AtStartup", "WaitForWorkersReady"},
	"mpiImplementation":      {"OpenMPI", "Intel", "MPICH"},
	"restartPolicy":          {"Always", "OnFailure", "Never", "ExitCode"},
	"mpiReplicaSpecs":        {"Launcher", "Worker"},
}
