// Package config loads config.yaml: strict decoding through yaml.Node (every
// problem carries its file, line and key path), ${VAR} expansion after
// parsing, Secret values with _file twins, every default in one place
// (Default), and validation that reports every problem at once.
//
// The decoding machinery (Decoder, Problem, Problems, DidYouMean) is exported
// because job files follow the same rules; package jobs uses it.
package config
