// Package appd reads ETSI MEC application descriptors (AppD, ETSI GS MEC
// 010-2 clause 6.2.1.2) and the application packages that carry them.
//
// An AppD arrives from an application provider, so everything here treats
// its input as hostile: Parse decodes JSON or YAML into the AppD types with
// a decoder that reports every wrongly typed field with its path, then runs
// Validate, which checks what the schema alone cannot (required fields,
// enumerations taken from the spec's descriptions, addresses, ports,
// uniqueness of identifiers). All problems come back together in one
// *ValidationError so that an API can answer with every invalid parameter at
// once.
//
// ReadPackage opens an application package (a zip archive in the CSAR layout
// of ETSI GS NFV-SOL 004), refuses archives that could hurt the reader (zip
// bombs, path traversal, symlinks, duplicate names), checks every file
// against the manifest, and parses the AppD it names.
//
// The MEC 010-2 v3 OpenAPI files have placeholder enumerations and a few
// types that disagree with their own descriptions; docs/appd.md lists each
// quirk and how this package handles it.
package appd
