"""Configuration schemas: the app key (instance) and one location (client)."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

# A value with no visible character would reach the provider as an empty query.
NOT_BLANK = validate.Regexp(r"\S", error="must not be blank")


class InstanceConfig(Schema):
    app_key = fields.String(required=True, validate=[validate.Length(min=1, max=200), NOT_BLANK],
                            metadata={"description": "OpenWeatherMap API key (appid)"})


class ClientConfig(Schema):
    """Either ``lat`` + ``lon`` or ``city`` (``"Berlin"`` or ``"Berlin,DE"``), never both."""

    lat = fields.Float(validate=validate.Range(-90, 90), allow_nan=False,
                       metadata={"description": "latitude in degrees, -90..90"})
    lon = fields.Float(validate=validate.Range(-180, 180), allow_nan=False,
                       metadata={"description": "longitude in degrees, -180..180"})
    city = fields.String(validate=[validate.Length(min=1, max=200), NOT_BLANK],
                         metadata={"description": "city name, optionally ',<country code>'"})

    @validates_schema(skip_on_field_errors=True)
    def one_location(self, data, **kwargs):
        has_lat, has_lon, has_city = "lat" in data, "lon" in data, "city" in data
        if (has_lat or has_lon) and has_city:
            raise ValidationError("give either lat/lon or city, not both")
        if has_lat != has_lon:
            missing = "lon" if has_lat else "lat"
            raise ValidationError(f"lat and lon go together: {missing} is missing",
                                  field_name=missing)
        if not (has_lat or has_city):
            raise ValidationError("a location is required: lat and lon, or city")
