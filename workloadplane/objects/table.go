package objects

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
)

// Helpers for the Table columns each resource declares, with the columns
// `kubectl get` shows against Kubernetes (priority 1 appears with -o wide).

func col(name, typ, desc string, priority int32) metav1.TableColumnDefinition {
	format := ""
	if name == "Name" {
		format = "name"
	}
	return metav1.TableColumnDefinition{Name: name, Type: typ, Format: format, Description: desc, Priority: priority}
}

func nameCol() metav1.TableColumnDefinition {
	return col("Name", "string", "Name must be unique within a namespace.", 0)
}

func ageCol() metav1.TableColumnDefinition {
	return col("Age", "string", "Time since the object was created.", 0)
}

func age(obj Object, now time.Time) string {
	return since(obj.GetCreationTimestamp().Time, now)
}

func since(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
