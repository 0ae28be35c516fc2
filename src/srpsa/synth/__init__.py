"""srpsa.synth"""
