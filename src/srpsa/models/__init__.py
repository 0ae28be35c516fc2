"""srpsa.models"""
