"""Configuration schemas: the app key (instance) and a location (client)."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema


class InstanceConfig(Schema):
    app_key = fields.String(required=True, validate=validate.Length(min=1, max=200),
                            metadata={"description": "OpenWeatherMap API key (appid)"})


class ClientConfig(Schema):
    lat = fields.Float(validate=validate.Range(-90, 90), allow_nan=False)
    lon = fields.Float(validate=validate.Range(-180, 180), allow_nan=False)
    city = fields.String(validate=validate.Length(min=1, max=200))

    @validates_schema
    def one_location(self, data, **kwargs):
        has_coords = "lat" in data or "lon" in data
        if has_coords and "city" in data:
            raise ValidationError("give either lat/lon or city, not both")
        if has_coords and not ("lat" in data and "lon" in data):
            raise ValidationError("lat and lon go together")
        if not has_coords and "city" not in data:
            raise ValidationError("a location is required: lat and lon, or city")
